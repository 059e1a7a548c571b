//! Writes of viewer TLS certificates: `PUT`/`DELETE /v1/certificates/{name}`.
//! Each is validated (a chain, a key that fits it) before it is stored, and
//! served from the next handshake on.

use std::time::SystemTime;

use crate::control::error::{ApiError, ErrorCode};
use crate::control::plane::ControlPlane;
pub use crate::control::records::certificates::{
    CertificateRecord, CertificateUpload, StoredCertificate, certificate_key,
};
use crate::control::records::put_json;
use crate::store::{Op, Txn};
use crate::time::rfc3339;

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
        let created = !state.certificates.contains_key(name);
        self.commit_write(&state, txn, name, &[]).await?;
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
        self.commit_write(&state, txn, name, &[]).await?;
        Ok(())
    }
}
