//! `partnergate certs dev`: a throwaway CA, a localhost server certificate and the
//! ES256 assertion signing key, for demos and tests only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use super::TlsError;

const CA_NAME: &str = "partnergate dev CA";
/// Subject alternative names of the server certificate (IP literals become IP SANs).
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
const VALIDITY_DAYS: i64 = 825;
const SECRET_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

/// Files written by `partnergate certs dev --out DIR`.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// The server certificate followed by the CA certificate.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// ES256 (P-256) key in PKCS#8 PEM that signs `X-Partner-Assertion`.
    pub assertion_key: PathBuf,
}

impl DevCerts {
    fn in_dir(dir: &Path) -> Self {
        DevCerts {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            assertion_key: dir.join("assertion.key"),
        }
    }
}

/// PEM texts of everything `certs dev` writes.
struct Generated {
    ca_cert: String,
    ca_key: String,
    server_chain: String,
    server_key: String,
    assertion_key: String,
}

/// Generate a development CA, a server certificate it signs for `localhost`,
/// `127.0.0.1` and `::1`, and an ES256 assertion key; write them into `out_dir`
/// (created if missing, existing files replaced, keys mode 0600).
pub fn write_dev_certs(out_dir: &Path) -> Result<DevCerts, TlsError> {
    std::fs::create_dir_all(out_dir).map_err(|error| TlsError::Write {
        path: out_dir.into(),
        error,
    })?;
    let generated = generate().map_err(|e| TlsError::Generate {
        path: out_dir.into(),
        reason: e.to_string(),
    })?;
    let files = DevCerts::in_dir(out_dir);
    write_file(&files.ca_cert, &generated.ca_cert, PUBLIC_MODE)?;
    write_file(&files.ca_key, &generated.ca_key, SECRET_MODE)?;
    write_file(&files.server_cert, &generated.server_chain, PUBLIC_MODE)?;
    write_file(&files.server_key, &generated.server_key, SECRET_MODE)?;
    write_file(&files.assertion_key, &generated.assertion_key, SECRET_MODE)?;
    Ok(files)
}

fn generate() -> Result<Generated, rcgen::Error> {
    let (not_before, not_after) = validity();
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca_params = ca_params(not_before, not_after);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let server_cert = server_params(not_before, not_after)?.signed_by(&server_key, &issuer)?;
    let assertion_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    Ok(Generated {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        server_chain: format!("{}{}", server_cert.pem(), ca_cert.pem()),
        server_key: server_key.serialize_pem(),
        assertion_key: assertion_key.serialize_pem(),
    })
}

/// From yesterday (tolerates clock skew between machines) for 825 days, the longest
/// lifetime Apple platforms accept for a server certificate.
fn validity() -> (OffsetDateTime, OffsetDateTime) {
    let not_before = OffsetDateTime::now_utc().saturating_sub(Duration::days(1));
    (
        not_before,
        not_before.saturating_add(Duration::days(VALIDITY_DAYS)),
    )
}

fn ca_params(not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

fn server_params(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(SERVER_NAMES.map(String::from))?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

/// Write `contents` to `path` with `mode`, also tightening the mode of a file that
/// already exists before anything secret goes into it.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|error| TlsError::Write {
        path: path.into(),
        error,
    })
}
