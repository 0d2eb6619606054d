//! Remember the SNI a TLS client asked for, so a request for another host on that
//! connection can be answered 421 Misdirected Request (the clean stage).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::proxy::Session;

/// The lower-cased server name of the TLS handshake.
#[derive(Debug)]
pub struct Sni(pub String);

/// Handshake callback storing [`Sni`] in the connection's TLS digest.
pub struct SniCapture;

#[async_trait]
impl TlsAccept for SniCapture {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let name = tls.server_name()?;
        Some(Arc::new(Sni(name.to_ascii_lowercase())))
    }
}

/// The SNI of this request's connection, if it was TLS with a server name.
pub fn of(session: &Session) -> Option<&str> {
    let digest = session.digest()?.ssl_digest.as_ref()?;
    digest.extension.get::<Sni>().map(|s| s.0.as_str())
}
