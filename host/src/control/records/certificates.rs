//! Viewer TLS certificates as stored: `certificates/<name>` holds a
//! [`StoredCertificate`], the PEM chain and key as uploaded.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Change, DecodeError, Write, json};
use crate::tls::Certificate;

pub const CERTIFICATE_PREFIX: &str = "certificates/";

/// The store key of certificate `name`.
pub fn certificate_key(name: &str) -> String {
    format!("{CERTIFICATE_PREFIX}{name}")
}

/// The body of `PUT /v1/certificates/{name}`, and what is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// PEM: the leaf first, then its intermediates.
    pub certificate_chain: String,
    /// PEM: PKCS#8, PKCS#1 or SEC1.
    pub private_key: String,
}

/// A certificate as persisted under `certificates/<name>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCertificate {
    pub name: String,
    pub uploaded: String,
    pub pem: CertificateUpload,
}

/// A stored certificate with its parsed form.
#[derive(Debug)]
pub struct CertificateRecord {
    pub stored: StoredCertificate,
    pub certificate: Arc<Certificate>,
}

impl CertificateRecord {
    /// Parses a stored certificate.
    pub fn from_stored(stored: StoredCertificate) -> Result<Self, String> {
        let certificate = Certificate::from_pem(
            &stored.name,
            stored.pem.certificate_chain.as_bytes(),
            stored.pem.private_key.as_bytes(),
        )
        .map_err(|e| e.0)?;
        Ok(Self {
            stored,
            certificate: Arc::new(certificate),
        })
    }
}

/// Applies a write of `certificates/<name>`.
pub fn apply(
    certificates: &mut BTreeMap<String, Arc<CertificateRecord>>,
    write: Write<'_>,
) -> Result<(), DecodeError> {
    match write.change {
        Change::Delete => {
            certificates.remove(write.key);
        }
        Change::Put(value) => {
            let record = CertificateRecord::from_stored(json(value)?)?;
            certificates.insert(record.stored.name.clone(), Arc::new(record));
        }
    }
    Ok(())
}
