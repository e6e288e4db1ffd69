//! Certificates for the TLS tests, made fresh per test: a CA, and leaf certificates it
//! signs for loopback (`localhost`, 127.0.0.1, ::1), good for both server and client
//! authentication. Files are PEM, laid out as ZooKeeper's PEM key stores are: one file
//! holding the private key and the certificate chain, one holding the trusted CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

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

impl Identity {
    /// The certificate in DER, as a TLS peer presents it.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_file(&self.cert)
            .expect("the identity's certificate")
            .to_vec()
    }
}

/// The leaf certificate a TLS port on `addr` (`127.0.0.1:port`) presents, by a
/// handshake made by hand as `client`, trusting the CAs in `ca`, offering `alpn`
/// (`h2` for gRPC; empty for none). Shows which certificate a reloading server uses.
pub fn presented_certificate(addr: &str, ca: &Path, client: &Identity, alpn: &[u8]) -> Vec<u8> {
    let mut config = client_config(ca, client);
    if !alpn.is_empty() {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let mut sock =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    }
    let leaf = conn.peer_certificates().expect("a server certificate")[0].to_vec();
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sock);
    leaf
}

/// A TLS client configuration presenting `client` and trusting the CAs in `ca`.
pub fn client_config(ca: &Path, client: &Identity) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(c.expect("CA certificate")).expect("trusted CA");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&client.key_store)
        .expect("client key store")
        .map(|c| c.expect("client certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(&client.key_store).expect("client key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client identity")
}

/// A four-letter word over TLS to `addr` (a secure client port answers them as the
/// plain one does) with `config`: the whole answer, or None if the connection, the
/// handshake or the answer failed. Bounded: 5 s to connect, 5 s per read.
pub fn four_letter_tls(
    addr: std::net::SocketAddr,
    word: &str,
    config: Arc<rustls::ClientConfig>,
) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(config, name).ok()?;
    let sock = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(word.as_bytes()).ok()?;
    tls.flush().ok()?;
    let mut out = Vec::new();
    // The server closes after answering; with or without a close_notify (Netty may
    // just close), what arrived is the answer.
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(_) => return None,
    }
    String::from_utf8(out).ok()
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
