//! What to trust and who we are: [`TlsOptions`] into a rustls [`ClientConfig`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;

/// The certificate authorities a server's certificate must chain to.
#[derive(Clone)]
#[non_exhaustive]
pub enum Roots {
    /// Mozilla's roots, compiled in (`webpki-roots`): public servers.
    WebPki,
    /// Every certificate of a PEM file (read again whenever it changes, see
    /// [`TlsSettings::from_options`](crate::TlsSettings::from_options)).
    CaFile(PathBuf),
    /// Every certificate of PEM bytes.
    CaPem(Vec<u8>),
    /// A store you built.
    Store(Arc<RootCertStore>),
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::WebPki => f.write_str("WebPki"),
            Roots::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
            Roots::CaPem(b) => write!(f, "CaPem({} bytes)", b.len()),
            Roots::Store(s) => write!(f, "Store({} roots)", s.len()),
        }
    }
}

/// A client certificate chain and its private key, for servers that require mutual TLS.
///
/// Its `Debug` never shows the key (nor, for files, anything but the paths).
#[derive(Clone)]
pub struct ClientIdentity {
    source: IdentitySource,
}

#[derive(Clone)]
enum IdentitySource {
    Files { cert: PathBuf, key: PathBuf },
    Pem { cert: Arc<[u8]>, key: Arc<[u8]> },
}

impl ClientIdentity {
    /// A certificate chain (PEM, leaf first) and a private key (PEM: PKCS#8, PKCS#1 or
    /// SEC1), read from files, again whenever they change.
    pub fn from_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        ClientIdentity {
            source: IdentitySource::Files {
                cert: cert.into(),
                key: key.into(),
            },
        }
    }

    /// A certificate chain and a private key, as PEM bytes.
    pub fn from_pem(cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        ClientIdentity {
            source: IdentitySource::Pem {
                cert: cert.into().into(),
                key: key.into().into(),
            },
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        match &self.source {
            IdentitySource::Files { cert, key } => vec![cert.clone(), key.clone()],
            IdentitySource::Pem { .. } => Vec::new(),
        }
    }

    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let (cert, cert_name, key, key_name) = match &self.source {
            IdentitySource::Files { cert, key } => (
                read("client certificate", cert)?,
                cert.display().to_string(),
                read("client key", key)?,
                key.display().to_string(),
            ),
            IdentitySource::Pem { cert, key } => (
                cert.to_vec(),
                IN_MEMORY.to_owned(),
                key.to_vec(),
                IN_MEMORY.to_owned(),
            ),
        };
        let certs = certificates("client certificate", &cert_name, &cert)?;
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| TlsError::Pem {
            what: "client key",
            source_name: key_name,
            reason: pem_reason(&e, "no private key (PKCS#8, PKCS#1 or SEC1)"),
        })?;
        Ok((certs, key))
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            IdentitySource::Files { cert, key } => f
                .debug_struct("ClientIdentity")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            IdentitySource::Pem { cert, .. } => f
                .debug_struct("ClientIdentity")
                .field("cert", &format_args!("{} bytes of PEM", cert.len()))
                .field("key", &format_args!("<redacted>"))
                .finish(),
        }
    }
}

const IN_MEMORY: &str = "(in memory)";

/// How to build a rustls [`ClientConfig`]: roots, an optional client identity, ALPN.
///
/// ```
/// use redial_tls::{ClientIdentity, TlsOptions};
///
/// let options = TlsOptions::ca_file("/etc/redis/ca.crt")
///     .with_identity(ClientIdentity::from_files("/etc/redis/client.crt", "/etc/redis/client.key"));
/// assert!(options.build().is_err(), "no such files here");
/// ```
#[derive(Clone, Debug)]
pub struct TlsOptions {
    roots: Roots,
    identity: Option<ClientIdentity>,
    insecure_skip_verify: bool,
    alpn: Vec<Vec<u8>>,
}

impl TlsOptions {
    /// Trust Mozilla's roots (`webpki-roots`).
    pub fn webpki() -> Self {
        TlsOptions::with_roots(Roots::WebPki)
    }

    /// Trust the certificates of a PEM file.
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        TlsOptions::with_roots(Roots::CaFile(path.into()))
    }

    /// Trust the certificates of PEM bytes.
    pub fn ca_pem(pem: impl Into<Vec<u8>>) -> Self {
        TlsOptions::with_roots(Roots::CaPem(pem.into()))
    }

    /// Trust `roots`.
    pub fn with_roots(roots: Roots) -> Self {
        TlsOptions {
            roots,
            identity: None,
            insecure_skip_verify: false,
            alpn: Vec::new(),
        }
    }

    /// Presents `identity` to servers that ask for a client certificate (mutual TLS).
    pub fn with_identity(mut self, identity: ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Offers these ALPN protocols (e.g. `b"h2"`), in preference order.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// **Dangerous**: accepts any server certificate for any name, so anyone on the path can
    /// read and change the conversation. For a test server only; the roots are then unused.
    pub fn with_insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = skip;
        self
    }

    /// Whether [`with_insecure_skip_verify`](Self::with_insecure_skip_verify) is on.
    pub fn insecure_skip_verify(&self) -> bool {
        self.insecure_skip_verify
    }

    /// The files this reads (CA, client certificate and key): a change to any of them is a
    /// new config.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Roots::CaFile(p) = &self.roots {
            files.push(p.clone());
        }
        if let Some(id) = &self.identity {
            files.extend(id.files());
        }
        files
    }

    /// Reads the files and builds the config (TLS 1.2 and 1.3, ring).
    ///
    /// # Errors
    /// A file that cannot be read, PEM without a certificate or key, a certificate or key
    /// rustls refuses.
    pub fn build(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(crate::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                what: "protocol versions",
                source,
            })?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(crate::insecure::AcceptAnyCertificate::new())
        } else {
            builder.with_root_certificates(self.root_store()?)
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(id) => {
                let (certs, key) = id.load()?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|source| TlsError::Rustls {
                        what: "client certificate and key",
                        source,
                    })?
            }
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }

    fn root_store(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let (what, pem) = match &self.roots {
            Roots::WebPki => {
                return Ok(Arc::new(RootCertStore::from_iter(
                    webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
                )))
            }
            Roots::Store(s) => return Ok(Arc::clone(s)),
            Roots::CaFile(p) => (p.display().to_string(), read("CA file", p)?),
            Roots::CaPem(b) => (IN_MEMORY.to_owned(), b.clone()),
        };
        let mut store = RootCertStore::empty();
        for cert in certificates("CA file", &what, &pem)? {
            store.add(cert).map_err(|source| TlsError::Rustls {
                what: "CA certificate",
                source,
            })?;
        }
        Ok(Arc::new(store))
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of `pem`; at least one.
fn certificates(
    what: &'static str,
    name: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::Pem {
        what,
        source_name: name.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_reason(&e, "no certificate")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE section".into()));
    }
    Ok(certs)
}

/// What is wrong with PEM, without quoting it: a malformed section could be part of a key.
fn pem_reason(e: &pem::Error, none: &str) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "a section is not valid base64".into(),
        pem::Error::NoItemsFound => none.into(),
        pem::Error::SectionTooLarge => "a section is larger than 256 MB".into(),
        _ => "unreadable PEM".into(),
    }
}
