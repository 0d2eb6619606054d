//! From a verified ID token's claims to what the directory needs: the email, the roles
//! the connection's mapping gives, and whether the provider vouched for a second factor.

use serde_json::{Map, Value};

use crate::directory::SsoConnection;

use super::SsoError;

/// `amr` values (RFC 8176) of something the user has: with a knowledge or inherence
/// factor next to it, the sign-in was multi-factor.
const POSSESSION: [&str; 6] = ["otp", "hwk", "swk", "sms", "tel", "sc"];
const KNOWLEDGE_OR_INHERENCE: [&str; 8] =
    ["pwd", "pin", "kba", "fpt", "face", "iris", "retina", "vbm"];
/// The `amr` value that says it outright.
pub const MFA_AMR: &str = "mfa";

/// The user's email from `c.email_claim`, lower-cased; refused when the provider says
/// it is not verified.
pub fn email(c: &SsoConnection, claims: &Map<String, Value>) -> Result<String, SsoError> {
    let email = claims
        .get(&c.email_claim)
        .and_then(Value::as_str)
        .and_then(crate::session::normalized_email)
        .ok_or_else(|| SsoError::new("email_missing", format!("no {:?} claim", c.email_claim)))?;
    if claims.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(SsoError::new("email_unverified", "email_verified is false"));
    }
    Ok(email)
}

/// The roles `c`'s mapping gives for these claims (its defaults, plus each mapped value
/// the roles claim holds), sorted; `None` when the connection maps no claim.
pub fn mapped_roles(c: &SsoConnection, claims: &Map<String, Value>) -> Option<Vec<String>> {
    let name = c.roles_claim.as_ref()?;
    let values: Vec<&str> = match claims.get(name) {
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut roles = c.default_roles.clone();
    for (value, role) in &c.role_map {
        if values.contains(&value.as_str()) {
            roles.push(role.clone());
        }
    }
    roles.sort();
    roles.dedup();
    Some(roles)
}

/// Whether the provider vouched for a second factor: only for a connection marked
/// `idp_mfa`, by `amr` (`mfa`, or a possession factor next to a knowledge or inherence
/// one) or by an `acr` the connection lists.
pub fn mfa_attested(c: &SsoConnection, claims: &Map<String, Value>) -> bool {
    if !c.idp_mfa {
        return false;
    }
    let amr: Vec<&str> = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let by_amr = amr.contains(&MFA_AMR)
        || (amr.iter().any(|m| POSSESSION.contains(m))
            && amr.iter().any(|m| KNOWLEDGE_OR_INHERENCE.contains(m)));
    let by_acr = claims
        .get("acr")
        .and_then(Value::as_str)
        .is_some_and(|acr| c.mfa_acr_values.iter().any(|v| v == acr));
    by_amr || by_acr
}
