//! Who the caller is, as the portal learns it: from the identity headers (trusted because
//! the gateway strips and sets them), or, with `--jwks-url`, from the verified assertion.

use http::HeaderMap;
use serde_json::Value;

use super::dashboards::parse_roles;
use super::header_text;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub user: String,
    pub org: Option<String>,
    pub org_type: Option<String>,
    pub roles: Vec<String>,
}

impl Identity {
    /// `None` without `X-Partner-User`: the request did not come through the gateway.
    pub fn from_headers(headers: &HeaderMap) -> Option<Identity> {
        Some(Identity {
            user: header_text(headers, "X-Partner-User")?,
            org: header_text(headers, "X-Partner-Org"),
            org_type: header_text(headers, "X-Partner-Org-Type"),
            roles: header_text(headers, "X-Partner-Roles")
                .map(|roles| parse_roles(&roles))
                .unwrap_or_default(),
        })
    }

    /// The identity a verified assertion carries (`email`, `org`, `org_type`, `roles`).
    pub fn from_claims(claims: &Value) -> Identity {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Identity {
            user: text("email")
                .or_else(|| text("sub"))
                .unwrap_or_else(|| "(no email claim)".to_owned()),
            org: text("org"),
            org_type: text("org_type"),
            roles: claim_roles(claims.get("roles")),
        }
    }
}

/// `roles` as a JSON array of strings, or a comma-separated string.
fn claim_roles(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(roles)) => roles
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(roles)) => parse_roles(roles),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    #[test]
    fn from_headers_needs_a_user() {
        let mut headers = HeaderMap::new();
        assert_eq!(Identity::from_headers(&headers), None);
        headers.insert(
            "x-partner-user",
            HeaderValue::from_static("bob@acme.example"),
        );
        headers.insert(
            "x-partner-roles",
            HeaderValue::from_static("partner-user, x"),
        );
        headers.insert("x-partner-org", HeaderValue::from_static("acme"));
        let identity = Identity::from_headers(&headers).unwrap();
        assert_eq!(identity.user, "bob@acme.example");
        assert_eq!(identity.roles, ["partner-user", "x"]);
        assert_eq!(identity.org.as_deref(), Some("acme"));
        assert_eq!(identity.org_type, None);
    }

    #[test]
    fn from_claims_reads_the_signed_identity() {
        let claims = json!({
            "sub": "u-7", "email": "carol@brightpath.example", "org": "brightpath",
            "org_type": "referral", "roles": ["referral-partner", 7],
        });
        let identity = Identity::from_claims(&claims);
        assert_eq!(identity.user, "carol@brightpath.example");
        assert_eq!(identity.roles, ["referral-partner"]);
        assert_eq!(identity.org_type.as_deref(), Some("referral"));

        let sparse = Identity::from_claims(&json!({"sub": "u-8", "roles": "a,b"}));
        assert_eq!(sparse.user, "u-8");
        assert_eq!(sparse.roles, ["a", "b"]);
        assert_eq!(sparse.org, None);
    }
}
