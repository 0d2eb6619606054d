// Tests may panic on unexpected values; the crate-wide lint targets runtime code.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};
use tempfile::TempDir;

use super::*;

fn dev() -> (TempDir, DevCerts) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_dev_certs(&dir.path().join("certs")).unwrap();
    (dir, files)
}

fn server_config(files: &DevCerts) -> ServerConfig {
    let key = load_certified_key(&files.server_cert, &files.server_key).unwrap();
    ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StaticCertResolver(key)))
}

fn client_config(files: &DevCerts) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in load_ca_bundle(&files.ca_cert).unwrap() {
        roots.add(cert).unwrap();
    }
    ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Move every pending TLS record from one side to the other, in memory.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut rd = wire.as_slice();
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

fn handshake(client: &mut Connection, server: &mut Connection) -> Result<(), rustls::Error> {
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        transfer(client, server)?;
        transfer(server, client)?;
    }
    panic!("handshake did not finish");
}

fn connect(files: &DevCerts, name: &str) -> Result<(Connection, Connection), rustls::Error> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut client: Connection =
        ClientConnection::new(Arc::new(client_config(files)), name)?.into();
    let mut server: Connection = ServerConnection::new(Arc::new(server_config(files)))?.into();
    handshake(&mut client, &mut server)?;
    Ok((client, server))
}

#[test]
fn dev_certs_round_trip_through_the_loader() {
    let (_dir, files) = dev();
    let key = load_certified_key(&files.server_cert, &files.server_key).unwrap();
    assert_eq!(key.cert.len(), 2, "server.crt holds the leaf then the CA");
    assert_eq!(
        load_ca_bundle(&files.ca_cert).unwrap(),
        vec![key.cert[1].clone()]
    );
    load_certified_key(&files.ca_cert, &files.ca_key).unwrap();
    let ca = std::fs::read_to_string(&files.ca_cert).unwrap();
    assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1);
}

#[test]
fn dev_key_files_are_private_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.key"), "old").unwrap();
    std::fs::set_permissions(
        dir.path().join("server.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let files = write_dev_certs(dir.path()).unwrap();
    for (path, mode) in [
        (&files.ca_key, 0o600),
        (&files.server_key, 0o600),
        (&files.assertion_key, 0o600),
        (&files.ca_cert, 0o644),
        (&files.server_cert, 0o644),
    ] {
        let actual = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(actual, mode, "{}", path.display());
    }
    load_certified_key(&files.server_cert, &files.server_key).unwrap();
}

#[test]
fn handshake_with_localhost_names_and_data() {
    let (_dir, files) = dev();
    for name in ["localhost", "127.0.0.1", "::1"] {
        let (mut client, mut server) = connect(&files, name).unwrap();
        client.writer().write_all(b"ping").unwrap();
        transfer(&mut client, &mut server).unwrap();
        let mut got = [0u8; 4];
        server.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping", "{name}");
    }
}

#[test]
fn handshake_for_another_name_is_refused_by_the_client() {
    let (_dir, files) = dev();
    let err = connect(&files, "partners.example.com").err().unwrap();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn resolver_serves_its_certificate_whatever_the_sni() {
    let (_dir, files) = dev();
    let (_client, server) = connect(&files, "localhost").unwrap();
    let Connection::Server(server) = server else {
        unreachable!()
    };
    assert_eq!(server.server_name(), Some("localhost"));
    let (_client, server) = connect(&files, "127.0.0.1").unwrap();
    let Connection::Server(server) = server else {
        unreachable!()
    };
    assert_eq!(server.server_name(), None, "IP literals send no SNI");
}

#[test]
fn unusable_files_are_errors_naming_the_file() {
    let (dir, files) = dev();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("empty.pem"), "").unwrap();
    std::fs::write(path("garbage.pem"), "this is not PEM at all\n").unwrap();
    std::fs::write(
        path("bad-base64.pem"),
        "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        path("not-der.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (cert, key) = (files.server_cert.clone(), files.server_key.clone());
    // (what, certificate file, key file, the file the error must name, reason)
    let cases = [
        (
            "missing cert",
            path("missing.pem"),
            key.clone(),
            path("missing.pem"),
            "cannot read",
        ),
        (
            "missing key",
            cert.clone(),
            path("missing.pem"),
            path("missing.pem"),
            "cannot read",
        ),
        (
            "empty cert",
            path("empty.pem"),
            key.clone(),
            path("empty.pem"),
            "no certificate found",
        ),
        (
            "empty key",
            cert.clone(),
            path("empty.pem"),
            path("empty.pem"),
            "no private key found",
        ),
        (
            "garbage cert",
            path("garbage.pem"),
            key.clone(),
            path("garbage.pem"),
            "no certificate found",
        ),
        (
            "garbage key",
            cert.clone(),
            path("garbage.pem"),
            path("garbage.pem"),
            "no private key found",
        ),
        (
            "bad base64",
            path("bad-base64.pem"),
            key.clone(),
            path("bad-base64.pem"),
            "invalid PEM",
        ),
        (
            "not DER",
            path("not-der.pem"),
            key.clone(),
            path("not-der.pem"),
            "invalid certificate",
        ),
        (
            "cert without key",
            cert.clone(),
            cert.clone(),
            cert.clone(),
            "certificates only",
        ),
        (
            "key mismatch",
            cert.clone(),
            files.ca_key.clone(),
            files.ca_key.clone(),
            "does not match",
        ),
    ];
    for (what, cert, key, named, reason) in cases {
        let msg = load_certified_key(&cert, &key)
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"))
            .to_string();
        assert!(
            msg.starts_with(&format!("{}: ", named.display())),
            "{what}: {msg}"
        );
        assert!(msg.contains(reason), "{what}: {msg}");
    }
}

#[test]
fn encrypted_key_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("enc.key");
    std::fs::write(
        &key,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let msg = read_private_key(&key).unwrap_err().to_string();
    assert!(
        msg.contains("no private key found (encrypted keys are not supported"),
        "{msg}"
    );
}

#[test]
fn ca_bundle_without_certificates_is_an_error() {
    let (dir, files) = dev();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for path in [&files.ca_key, &empty] {
        let err = load_ca_bundle(path).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("{}: no certificate found", path.display())
        );
    }
    assert!(matches!(
        load_ca_bundle(&dir.path().join("nope.pem")),
        Err(TlsError::Read { .. })
    ));
    assert_eq!(load_ca_bundle(&files.server_cert).unwrap().len(), 2);
}

#[test]
fn assertion_key_is_p256_pkcs8() {
    let (_dir, files) = dev();
    let pem = std::fs::read_to_string(&files.assertion_key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let der = rustls_pemfile::private_key(&mut pem.as_bytes())
        .unwrap()
        .unwrap();
    assert!(matches!(der, PrivateKeyDer::Pkcs8(_)));
    let key = rcgen::KeyPair::from_pem(&pem).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    let signer = rustls::crypto::ring::sign::any_ecdsa_type(&der).unwrap();
    assert_eq!(signer.algorithm(), rustls::SignatureAlgorithm::ECDSA);
}

#[test]
fn assertion_key_signs_es256_jwts() {
    use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
    let (_dir, files) = dev();
    let pem = std::fs::read(&files.assertion_key).unwrap();
    let public = rcgen::KeyPair::from_pem(&String::from_utf8(pem.clone()).unwrap())
        .unwrap()
        .public_key_pem();
    let claims = serde_json::json!({ "sub": "alice@acme.example", "exp": 4_000_000_000u64 });
    let token = encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    let back = decode::<serde_json::Value>(
        &token,
        &DecodingKey::from_ec_pem(public.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(back.claims, claims);
}

#[test]
fn sec1_and_pkcs1_keys_load() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let data = |name: &str| Path::new(dir).join("src/tls/testdata").join(name);
    for (cert, key) in [("ec.crt", "ec-sec1.key"), ("rsa.crt", "rsa-pkcs1.key")] {
        let der = read_private_key(&data(key)).unwrap();
        assert!(
            matches!(der, PrivateKeyDer::Sec1(_) | PrivateKeyDer::Pkcs1(_)),
            "{key}"
        );
        load_certified_key(&data(cert), &data(key)).unwrap();
    }
    let err = load_certified_key(&data("rsa.crt"), &data("ec-sec1.key")).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
}
