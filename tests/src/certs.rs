//! Certificates for the TLS tests, made fresh per test: a CA, and leaf certificates it
//! signs for loopback (`localhost`, 127.0.0.1, ::1), good for both server and client
//! authentication. Files are PEM, laid out as ZooKeeper's PEM key stores are: one file
//! holding the private key and the certificate chain, one holding the trusted CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate authority that signs the tests' certificates.
#[derive(Debug)]
pub struct TestCa {
    name: String,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// One leaf certificate with its key, written out as PEM files.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Private key then certificate: a PEM key store (`ssl.keyStore.location`).
    pub key_store: PathBuf,
    /// The certificate alone.
    pub cert: PathBuf,
    /// The private key alone (kazoo's `keyfile`, openssl's `-key`).
    pub key: PathBuf,
    /// The certificate's serial number, to tell a reloaded certificate from the old one.
    pub serial: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            name: name.to_owned(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate (a PEM trust store) into `dir` and returns its path.
    pub fn write_trust_store(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}-ca.pem", self.name));
        std::fs::write(&path, &self.cert_pem).expect("write CA");
        path
    }

    /// A leaf certificate for `common_name`, valid for loopback names, written as
    /// `<file_stem>.{keystore,crt,key}.pem` in `dir` (overwriting, which is how the
    /// reload tests swap certificates).
    pub fn issue(&self, common_name: &str, dir: &Path, file_stem: &str) -> Identity {
        self.issue_for(
            common_name,
            &[
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ],
            dir,
            file_stem,
        )
    }

    /// Like [`TestCa::issue`] with the names given (DNS names or IP addresses).
    pub fn issue_for(
        &self,
        common_name: &str,
        names: &[String],
        dir: &Path,
        file_stem: &str,
    ) -> Identity {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.clone().try_into().expect("DNS name")),
            })
            .collect();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let serial: Vec<u8> = {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            // Positive, unique per call within a test run.
            let mut s = nanos.to_be_bytes()[4..].to_vec();
            s[0] &= 0x7f;
            s
        };
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let key_pem = key.serialize_pem();
        let cert_pem = cert.pem();
        let key_store = dir.join(format!("{file_stem}.keystore.pem"));
        let cert_path = dir.join(format!("{file_stem}.crt.pem"));
        let key_path = dir.join(format!("{file_stem}.key.pem"));
        std::fs::write(&cert_path, &cert_pem).expect("write certificate");
        std::fs::write(&key_path, &key_pem).expect("write key");
        // Written whole in one go: a reloading server must never see half a key store.
        let tmp = dir.join(format!(".{file_stem}.keystore.tmp"));
        std::fs::write(&tmp, format!("{key_pem}{cert_pem}")).expect("write key store");
        std::fs::rename(&tmp, &key_store).expect("move key store");
        Identity {
            key_store,
            cert: cert_path,
            key: key_path,
            serial,
        }
    }
}
