//! Passkeys (WebAuthn) as a second factor, with `webauthn-rs`: the relying party is the
//! host of `server.public_url`, the only allowed origin is its origin. A ceremony's server
//! state lives in the directory (a `login_challenges` row) between its two requests, so
//! any instance may finish it. A passkey's credential (with its signature counter) is
//! stored as JSON in the factor's `secret`.

use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CredentialID, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::directory::{Factor, FactorKind};

/// Why a ceremony failed (for the log; the client sees one message).
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("passkeys need a public_url with a host name: {0}")]
    Config(String),
    #[error("the ceremony's state is missing or unreadable")]
    State,
    #[error("the browser's answer is not a WebAuthn credential: {0}")]
    Malformed(String),
    #[error("the credential did not verify: {0}")]
    Refused(String),
}

/// The relying party of one configuration.
pub struct Passkeys {
    webauthn: Webauthn,
}

/// A stable WebAuthn user handle for a user id (not the id itself).
fn user_handle(user_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("partnergate-user:{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn stored(f: &Factor) -> Option<Passkey> {
    (f.kind == FactorKind::Passkey)
        .then(|| serde_json::from_str::<Passkey>(&f.secret).ok())
        .flatten()
}

impl Passkeys {
    /// For `origin` (`https://partners.example.com`); the host is the relying party id.
    pub fn new(origin: &str) -> Result<Passkeys, PasskeyError> {
        let url = Url::parse(origin).map_err(|e| PasskeyError::Config(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| PasskeyError::Config(origin.to_string()))?
            .to_string();
        let webauthn = WebauthnBuilder::new(&host, &url)
            .and_then(|b| b.rp_name("Partner portal").build())
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        Ok(Passkeys { webauthn })
    }

    /// Start registering a passkey for the user: the options for
    /// `navigator.credentials.create` and the state to keep.
    pub fn start_registration(
        &self,
        user_id: &str,
        email: &str,
        factors: &[Factor],
    ) -> Result<(serde_json::Value, String), PasskeyError> {
        let exclude: Vec<CredentialID> = factors
            .iter()
            .filter_map(stored)
            .map(|p| p.cred_id().clone())
            .collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_handle(user_id), email, email, Some(exclude))
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let state = serde_json::to_string(&state).map_err(|_| PasskeyError::State)?;
        let options = serde_json::to_value(options).map_err(|_| PasskeyError::State)?;
        Ok((options, state))
    }

    /// Finish a registration: the credential to store (JSON).
    pub fn finish_registration(
        &self,
        answer: &serde_json::Value,
        state: &str,
    ) -> Result<String, PasskeyError> {
        let state: PasskeyRegistration =
            serde_json::from_str(state).map_err(|_| PasskeyError::State)?;
        let answer: RegisterPublicKeyCredential = serde_json::from_value(answer.clone())
            .map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&answer, &state)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        serde_json::to_string(&passkey).map_err(|_| PasskeyError::State)
    }

    /// Start a sign-in with one of the user's passkeys: the options for
    /// `navigator.credentials.get` and the state to keep. `None` when the user has none.
    pub fn start_authentication(
        &self,
        factors: &[Factor],
    ) -> Result<Option<(serde_json::Value, String)>, PasskeyError> {
        let keys: Vec<Passkey> = factors.iter().filter_map(stored).collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let state = serde_json::to_string(&state).map_err(|_| PasskeyError::State)?;
        let options = serde_json::to_value(options).map_err(|_| PasskeyError::State)?;
        Ok(Some((options, state)))
    }

    /// Finish a sign-in: the factor that signed and its updated credential (JSON).
    pub fn finish_authentication(
        &self,
        answer: &serde_json::Value,
        state: &str,
        factors: &[Factor],
    ) -> Result<(String, String), PasskeyError> {
        let state: PasskeyAuthentication =
            serde_json::from_str(state).map_err(|_| PasskeyError::State)?;
        let answer: PublicKeyCredential = serde_json::from_value(answer.clone())
            .map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&answer, &state)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        for f in factors {
            let Some(mut key) = stored(f) else { continue };
            if key.cred_id() == result.cred_id() {
                key.update_credential(&result);
                let updated = serde_json::to_string(&key).map_err(|_| PasskeyError::State)?;
                return Ok((f.id.clone(), updated));
            }
        }
        Err(PasskeyError::Refused(
            "not one of the user's passkeys".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_from_the_public_url() {
        assert!(Passkeys::new("https://partners.example.com").is_ok());
        assert!(Passkeys::new("http://localhost:8080").is_ok());
        assert!(
            Passkeys::new("https://203.0.113.7").is_err(),
            "an IP is no RP id"
        );
        assert_ne!(user_handle("u-1"), user_handle("u-2"));
        assert_eq!(user_handle("u-1"), user_handle("u-1"));
    }

    #[test]
    fn hostile_answers_are_refused_not_panics() {
        let p = Passkeys::new("https://partners.example.com").unwrap();
        let (options, state) = p.start_registration("u-1", "a@x.example", &[]).unwrap();
        assert!(options["publicKey"]["challenge"].is_string(), "{options}");
        for answer in [
            serde_json::json!({}),
            serde_json::json!({"id": "x", "rawId": "x", "type": "public-key", "response": {"attestationObject": "AA", "clientDataJSON": "AA"}}),
        ] {
            assert!(p.finish_registration(&answer, &state).is_err());
        }
        assert!(matches!(
            p.finish_registration(&serde_json::json!({}), "nope"),
            Err(PasskeyError::State)
        ));
        assert!(p.start_authentication(&[]).unwrap().is_none());
    }
}
