//! TLS for viewers: the certificates the host holds, and the one each
//! handshake gets by its SNI name.
//!
//! Certificates come from the control API (`PUT /v1/certificates/{name}`, kept
//! in the store) and from `--tls-cert-dir` (every `*.pem` file holding a chain
//! and its key). A certificate serves every name it is valid for: the first
//! whose chain covers the handshake's SNI name (exact names before wildcards,
//! API certificates before directory ones) answers it, and the choice is
//! remembered per name until the set changes. ALPN offers `h2` and
//! `http/1.1`.
//!
//! The certificate a connection was opened with bounds what it may ask for:
//! a request whose host that certificate does not cover (SNI for one name,
//! `Host` for another: domain fronting) is refused with 421 unless the host
//! runs with `--allow-domain-fronting` ([`ServedCertificate`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CertificateError(pub String);

/// One certificate chain and its key, ready to serve.
#[derive(Debug)]
pub struct Certificate {
    /// Where it came from: the API name, or the file.
    pub name: String,
    key: Arc<CertifiedKey>,
}

impl Certificate {
    /// Parses a PEM chain and a PEM private key, and checks that they match.
    pub fn from_pem(name: &str, chain: &[u8], key: &[u8]) -> Result<Self, CertificateError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            CertificateError(format!("{name}: {what}: {e}"))
        };
        let certs = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate chain", &e))?;
        if certs.is_empty() {
            return Err(CertificateError(format!(
                "{name}: no certificate in the chain"
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| bad("private key", &e))?;
        let provider = provider();
        let certified = CertifiedKey::from_der(certs, key, &provider)
            .map_err(|e| bad("the key does not fit the certificate", &e))?;
        Ok(Self {
            name: name.to_owned(),
            key: Arc::new(certified),
        })
    }

    /// Whether the leaf certificate is valid for `name` (a DNS name).
    pub fn covers(&self, name: &str) -> bool {
        leaf_covers(&self.key, name)
    }
}

/// Whether the leaf certificate of `key` is valid for `name` (a DNS name or
/// an IP address).
fn leaf_covers(key: &CertifiedKey, name: &str) -> bool {
    let Some(leaf) = key.cert.first() else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(server) = ServerName::try_from(name) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&server).is_ok()
}

/// The certificate a viewer's TLS connection was opened with, carried with
/// each of its requests: the names they may ask for.
#[derive(Debug, Clone)]
pub struct ServedCertificate(Option<Arc<CertifiedKey>>);

impl ServedCertificate {
    /// The certificate chosen for the handshake's SNI `name` (none, when the
    /// certificates changed since and none covers it: then it serves no
    /// name).
    pub fn for_name(store: &CertStore, name: &str) -> Self {
        Self(store.choose(name))
    }

    /// Whether a request for `host` (a name or an IP address, brackets
    /// around IPv6 allowed) is one this certificate serves.
    pub fn covers(&self, host: &str) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        self.0.as_ref().is_some_and(|key| leaf_covers(key, host))
    }
}

/// Every `*.pem` file of `dir`, each holding a chain and its key.
pub fn load_dir(dir: &Path) -> Result<Vec<Certificate>, CertificateError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| CertificateError(format!("{}: {e}", dir.display())))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path)
                .map_err(|e| CertificateError(format!("{}: {e}", path.display())))?;
            Certificate::from_pem(&path.display().to_string(), &bytes, &bytes)
        })
        .collect()
}

/// The certificates being served, swapped whole when they change.
#[derive(Debug, Default)]
pub struct CertStore {
    set: ArcSwap<CertSet>,
}

#[derive(Debug, Default)]
struct CertSet {
    certificates: Vec<Arc<Certificate>>,
    /// SNI name → the certificate chosen for it (or none).
    chosen: Mutex<HashMap<String, Option<Arc<CertifiedKey>>>>,
}

/// Names remembered per certificate set before the memory starts over.
const MAX_CHOSEN: usize = 10_000;

impl CertStore {
    /// Serves `certificates` from the next handshake on.
    pub fn replace(&self, certificates: Vec<Arc<Certificate>>) {
        self.set.store(Arc::new(CertSet {
            certificates,
            chosen: Mutex::new(HashMap::new()),
        }));
    }

    /// How many certificates are served.
    pub fn len(&self) -> usize {
        self.set.load().certificates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The certificate for SNI `name`.
    pub fn choose(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut chosen = set.chosen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = chosen.get(&name) {
            return found.clone();
        }
        let found = set
            .certificates
            .iter()
            .find(|c| c.covers(&name))
            .map(|c| c.key.clone());
        if chosen.len() >= MAX_CHOSEN {
            chosen.clear();
        }
        chosen.insert(name, found.clone());
        found
    }
}

/// Answers each handshake from a [`CertStore`].
#[derive(Debug)]
pub struct Resolver(pub Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Without SNI (an IP address, an old client) there is no name to
        // choose by: the handshake fails rather than guess.
        self.0.choose(hello.server_name()?)
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The TLS server config of the viewer listener.
pub fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, CertificateError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| CertificateError(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(store)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
