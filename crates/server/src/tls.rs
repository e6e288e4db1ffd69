//! TLS for the secure client port, the quorum links and the admin API: rustls
//! configurations built from PEM files named with ZooKeeper's keys, rebuilt when the
//! files change.
//!
//! One mechanism serves all three: a [`watch`] channel holding the current
//! configuration. Listeners and dialers read it per connection, so a reloaded
//! certificate applies to the next handshake and never cuts a live connection. A file
//! that fails to parse after a change is logged and the previous configuration stays.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often the certificate files are looked at for changes.
pub const RELOAD_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{key}: {path} holds no PEM certificate")]
    NoCertificate { key: String, path: PathBuf },
    #[error(
        "{key}: {path} holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1); \
         Rookery reads PEM key stores: convert JKS or PKCS#12 with openssl, and decrypt the key"
    )]
    NoKey { key: String, path: PathBuf },
    #[error("{key}: {path}: {message}")]
    Invalid {
        key: String,
        path: PathBuf,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

/// Whether a TLS server asks its clients for certificates (`ssl.clientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    None,
    Want,
    /// ZooKeeper's default.
    #[default]
    Need,
}

impl ClientAuth {
    pub fn from_name(name: &str) -> Option<ClientAuth> {
        match name.to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "want" => Some(ClientAuth::Want),
            "need" => Some(ClientAuth::Need),
            _ => None,
        }
    }
}

/// One set of `<prefix>keyStore.location`, `<prefix>trustStore.location`,
/// `<prefix>clientAuth` and `<prefix>hostnameVerification`, as zoo.cfg names them for
/// the client port (`ssl.`), the quorum (`ssl.quorum.`) or the admin API (`admin.ssl.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The zoo.cfg prefix, for error messages.
    pub prefix: String,
    /// PEM: this side's private key and certificate chain (leaf first).
    pub key_store: PathBuf,
    /// PEM: the certificates trusted to sign the other side's.
    pub trust_store: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Dialers check that the peer's certificate names the host they dialled.
    pub hostname_verification: bool,
}

impl TlsSettings {
    pub fn new(prefix: &str, key_store: PathBuf) -> TlsSettings {
        TlsSettings {
            prefix: prefix.to_owned(),
            key_store,
            trust_store: None,
            client_auth: ClientAuth::default(),
            hostname_verification: true,
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.key_store.clone()];
        v.extend(self.trust_store.clone());
        v
    }

    fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let key = self.key("keyStore.location");
        let pem = read(&key, &self.key_store)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&key, &self.key_store, e))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                key,
                path: self.key_store.clone(),
            });
        }
        let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey {
            key,
            path: self.key_store.clone(),
        })?;
        Ok((certs, private))
    }

    fn roots(&self) -> Result<Option<Arc<RootCertStore>>, TlsError> {
        let Some(path) = &self.trust_store else {
            return Ok(None);
        };
        let key = self.key("trustStore.location");
        let pem = read(&key, path)?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid(&key, path, e))?;
            roots.add(cert).map_err(|e| invalid(&key, path, e))?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoCertificate {
                key,
                path: path.clone(),
            });
        }
        Ok(Some(Arc::new(roots)))
    }

    /// A server configuration: this side's identity, and the client check asked for.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, TlsError> {
        let (chain, key) = self.identity()?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match (self.client_auth, self.roots()?) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (auth, Some(roots)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if auth == ClientAuth::Want {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            (_, None) => {
                return Err(TlsError::Config(format!(
                    "{} is {:?}, so {} must name the certificates that sign clients' \
                     (or set it to none)",
                    self.key("clientAuth"),
                    self.client_auth,
                    self.key("trustStore.location")
                )));
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| invalid(&self.key("keyStore.location"), &self.key_store, e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A dialer's configuration: presents this side's identity and checks the server's
    /// against the trust store.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let roots = self.roots()?.ok_or_else(|| {
            TlsError::Config(format!(
                "{} must name the certificates that sign the servers'",
                self.key("trustStore.location")
            ))
        })?;
        let (chain, key) = self.identity()?;
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.hostname_verification {
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        };
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| invalid(&self.key("keyStore.location"), &self.key_store, e))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })
}

fn invalid(key: &str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        key: key.to_owned(),
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// `hostnameVerification=false`: the chain must still lead to a trusted root; only the
/// name in the certificate may differ from the address dialled.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A byte stream that splits into halves one task reads and another writes. Plain TCP
/// splits without a lock, which the busy paths keep; TLS streams share a lock.
pub(crate) trait SplitStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn split(self) -> (Self::Read, Self::Write);
}

impl SplitStream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn split(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl SplitStream for tokio_rustls::server::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

impl SplitStream for tokio_rustls::client::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// The current server configuration; cheap to clone, read per handshake.
pub type ServerTls = watch::Receiver<Arc<rustls::ServerConfig>>;
/// The current dialer configuration.
pub type ClientTls = watch::Receiver<Arc<rustls::ClientConfig>>;

/// Why an accepted connection did not become a TLS stream.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
    #[error("no TLS handshake within {0:?}")]
    TimedOut(Duration),
}

/// The server side of a handshake under `config` (the one current when the connection
/// was accepted: `ServerTls::borrow`), bounded by `within` so a caller that never speaks
/// does not hold the task.
pub async fn accept(
    config: Arc<rustls::ServerConfig>,
    stream: TcpStream,
    within: Duration,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, HandshakeError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(within, acceptor.accept(stream)).await {
        Ok(result) => result.map_err(HandshakeError::Failed),
        Err(_) => Err(HandshakeError::TimedOut(within)),
    }
}

/// Builds the server configuration now (an error stops start-up) and keeps it current.
pub fn server_tls(
    settings: TlsSettings,
    alpn: &'static [&'static [u8]],
) -> Result<ServerTls, TlsError> {
    reloading(settings, move |s| s.server_config(alpn))
}

/// Builds the dialer configuration now and keeps it current.
pub fn client_tls(settings: TlsSettings) -> Result<ClientTls, TlsError> {
    reloading(settings, TlsSettings::client_config)
}

/// What says a file changed: its modification time and length.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

fn reloading<T: Send + Sync + 'static>(
    settings: TlsSettings,
    build: impl Fn(&TlsSettings) -> Result<T, TlsError> + Send + 'static,
) -> Result<watch::Receiver<Arc<T>>, TlsError> {
    let files = settings.files();
    let mut seen = stamp(&files);
    let (tx, rx) = watch::channel(Arc::new(build(&settings)?));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if tx.is_closed() {
                return;
            }
            let now = stamp(&files);
            if now == seen {
                continue;
            }
            // A writer half-way through leaves files that do not parse; its last write
            // changes the stamp again, and that build is the one that counts.
            match build(&settings) {
                Ok(config) => {
                    seen = now;
                    info!(
                        prefix = %settings.prefix,
                        key_store = %settings.key_store.display(),
                        "TLS certificates reloaded"
                    );
                    tx.send_replace(Arc::new(config));
                }
                Err(e) => {
                    seen = now;
                    warn!(error = %e, "TLS certificates changed but do not load; keeping the previous ones");
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_names_are_zookeepers() {
        assert_eq!(ClientAuth::from_name("NEED"), Some(ClientAuth::Need));
        assert_eq!(ClientAuth::from_name("want"), Some(ClientAuth::Want));
        assert_eq!(ClientAuth::from_name("none"), Some(ClientAuth::None));
        assert_eq!(ClientAuth::from_name("sometimes"), None);
    }

    #[test]
    fn missing_and_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = TlsSettings::new("ssl.", dir.path().join("absent.pem"));
        let e = s.server_config(&[]).unwrap_err().to_string();
        assert!(
            e.contains("ssl.keyStore.location") && e.contains("absent.pem"),
            "{e}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem").unwrap();
        let s = TlsSettings::new("ssl.quorum.", empty);
        let e = s.server_config(&[]).unwrap_err().to_string();
        assert!(
            e.contains("ssl.quorum.keyStore.location") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}
