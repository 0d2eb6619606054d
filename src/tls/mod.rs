//! Certificates and keys for the TLS listener and upstream verification.
//!
//! pingora's rustls settings panic on a bad certificate or key, so everything is loaded
//! and checked here first (ring provider, explicitly) and pingora is handed a resolver.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

mod dev;

pub use dev::{write_dev_certs, DevCerts};

/// A certificate or key file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: invalid PEM: {error}", path.display())]
    Pem {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: no certificate found", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key found{hint}", path.display())]
    NoPrivateKey { path: PathBuf, hint: &'static str },
    #[error("{}: invalid certificate: {reason}", path.display())]
    InvalidCertificate { path: PathBuf, reason: String },
    #[error("{}: unsupported private key: {reason}", path.display())]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("{}: private key does not match the certificate in {}", path.display(), cert.display())]
    KeyMismatch { path: PathBuf, cert: PathBuf },
    #[error("{}: cannot write: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: cannot generate certificates: {reason}", path.display())]
    Generate { path: PathBuf, reason: String },
}

/// The provider pingora-rustls is built with; never the process default, which is
/// ambiguous when another dependency enables aws-lc-rs too.
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Load a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, SEC1 or
/// PKCS#1), and check that the key is usable and belongs to the leaf certificate.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs(cert_path)?;
    let key = read_private_key(key_path)?;
    let signing_key =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::UnsupportedKey {
                path: key_path.into(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                path: key_path.into(),
                cert: cert_path.into(),
            })
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Err(TlsError::UnsupportedKey {
                path: key_path.into(),
                reason: "cannot derive its public key to compare with the certificate".into(),
            })
        }
        Err(e) => Err(TlsError::InvalidCertificate {
            path: cert_path.into(),
            reason: format!("leaf certificate: {e}"),
        }),
    }
}

/// Serves the same certificate whatever the SNI; host checks happen in the proxy.
#[derive(Debug)]
pub struct StaticCertResolver(pub Arc<CertifiedKey>);

impl ResolvesServerCert for StaticCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Load a PEM CA bundle for verifying upstream certificates; every certificate in it
/// must be usable as a trust anchor.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = read_certs(path)?;
    let mut store = rustls::RootCertStore::empty();
    for (n, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| TlsError::InvalidCertificate {
                path: path.into(),
                reason: format!("certificate #{}: {e}", n + 1),
            })?;
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.into(),
        error,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            path: path.into(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(TlsError::NoPrivateKey {
            path: path.into(),
            hint: missing_key_hint(&pem),
        }),
        Err(error) => Err(TlsError::Pem {
            path: path.into(),
            error,
        }),
    }
}

/// Why a PEM file that holds no usable key might still look like one.
fn missing_key_hint(pem: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        " (encrypted keys are not supported; decrypt it first)"
    } else if text.contains("-----BEGIN CERTIFICATE-----") {
        " (the file holds certificates only)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests;
