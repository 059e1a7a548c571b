//! Writes of viewer TLS certificates: `PUT`/`DELETE /v1/certificates/{name}`.
//! Each is validated (a chain, a key that fits it) before it is stored, and
//! served from the next handshake on.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};
use super::state::{CERTIFICATE_PREFIX, ControlPlane, put_json};
use crate::store::{Op, Txn};
use crate::time::rfc3339;
use crate::tls::Certificate;

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

fn certificate_key(name: &str) -> String {
    format!("{CERTIFICATE_PREFIX}{name}")
}

/// The error for a certificate that is not there.
pub fn no_such_certificate(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoSuchCertificate,
        format!("no certificate is named {name:?}"),
    )
}

impl ControlPlane {
    /// `PUT /v1/certificates/{name}`: adds or replaces a certificate. Returns
    /// whether it is new.
    pub async fn put_certificate(
        &self,
        name: &str,
        upload: CertificateUpload,
    ) -> Result<bool, ApiError> {
        if !crate::config::is_valid_id(name) {
            return Err(ApiError::invalid_argument(format!(
                "{name:?} is not a certificate name (1-128 of A-Z a-z 0-9 - _ .)"
            )));
        }
        let stored = StoredCertificate {
            name: name.to_owned(),
            uploaded: rfc3339(SystemTime::now()),
            pem: upload,
        };
        let record = CertificateRecord::from_stored(stored)
            .map_err(|reason| ApiError::new(ErrorCode::InvalidCertificate, reason))?;
        let (_guard, state) = self.begin_write().await?;
        let txn = Txn {
            compares: Vec::new(),
            ops: vec![put_json(certificate_key(name), &record.stored)?],
        };
        let revision = self.commit(txn, name).await?;
        let created = !state.certificates.contains_key(name);
        let record = Arc::new(record);
        self.publish_change(&state, revision, |next| {
            next.certificates.insert(name.to_owned(), record);
        });
        Ok(created)
    }

    /// `DELETE /v1/certificates/{name}`.
    pub async fn delete_certificate(&self, name: &str) -> Result<(), ApiError> {
        let (_guard, state) = self.begin_write().await?;
        if !state.certificates.contains_key(name) {
            return Err(no_such_certificate(name));
        }
        let txn = Txn {
            compares: vec![],
            ops: vec![Op::Delete {
                key: certificate_key(name),
            }],
        };
        let revision = self.commit(txn, name).await?;
        self.publish_change(&state, revision, |next| {
            next.certificates.remove(name);
        });
        Ok(())
    }
}
