//! [`Rejection`]: the status, reason and headers of every kind of refusal, and the names
//! the access log and the metrics use.

use std::collections::HashSet;

use crate::admission::{
    login_location, AuthFailure, Decision, LimitScope, Reason, Rejection, SessionFailure,
    TokenProblem, CHALLENGE, CHALLENGE_INVALID_TOKEN,
};
use crate::config::RateKey;
use crate::directory::StoreError;
use crate::jwt::BearerError;
use crate::normalize::Malformed;
use crate::policy::DenyReason;

/// The answer as the client sees it: status, extra headers, whether it has a body.
fn answer(r: &Rejection) -> (u16, Vec<(&'static str, String)>, bool) {
    let headers = r.headers().map(|(n, v)| (n, v.into_owned())).collect();
    (r.status, headers, r.has_body())
}

fn h(name: &'static str, value: &str) -> (&'static str, String) {
    (name, value.to_string())
}

#[test]
fn each_constructor_answers_with_its_status_decision_and_headers() {
    let cases = [
        (
            Rejection::malformed(Reason::Malformed(Malformed::EncodedSlash)),
            (400, vec![], true),
            Decision::Deny,
            "encoded_slash",
        ),
        (
            Rejection::malformed(Reason::Unparsable),
            (400, vec![], true),
            Decision::Deny,
            "malformed",
        ),
        (
            Rejection::malformed(Reason::HeaderTooLarge),
            (431, vec![], true),
            Decision::Deny,
            "header_too_large",
        ),
        (
            Rejection::malformed(Reason::Misdirected),
            (421, vec![], true),
            Decision::Deny,
            "misdirected",
        ),
        (
            Rejection::malformed(Reason::BodyTooLarge),
            (413, vec![], true),
            Decision::Deny,
            "body_too_large",
        ),
        (
            Rejection::denied(DenyReason::NoRoute),
            (404, vec![], true),
            Decision::Deny,
            "no_route",
        ),
        (
            Rejection::denied(DenyReason::Method),
            (403, vec![], true),
            Decision::Deny,
            "method",
        ),
        (
            Rejection::denied(DenyReason::UserInactive),
            (403, vec![], true),
            Decision::Deny,
            "user_inactive",
        ),
        (
            Rejection::websocket_not_allowed(),
            (403, vec![], true),
            Decision::Deny,
            "websocket_not_allowed",
        ),
        (
            Rejection::unauthenticated(Reason::NoCredentials, false, false, "/a", None),
            (401, vec![h("www-authenticate", CHALLENGE)], true),
            Decision::Unauthenticated,
            "no_credentials",
        ),
        (
            Rejection::unauthenticated(Reason::NoCredentials, false, true, "/a", Some("b=1")),
            (
                302,
                vec![h("location", "/.partnergate/login?rd=/a%3Fb%3D1")],
                false,
            ),
            Decision::Unauthenticated,
            "no_credentials",
        ),
        (
            Rejection::unauthenticated(
                Reason::Session(SessionFailure::Idle),
                false,
                true,
                "/",
                None,
            ),
            (302, vec![h("location", "/.partnergate/login?rd=/")], false),
            Decision::Unauthenticated,
            "session_idle",
        ),
        // A refused token is a 401 even for a browser: a login page would not help.
        (
            Rejection::unauthenticated(
                Reason::Token(TokenProblem::from(&BearerError::TokenExpired)),
                true,
                true,
                "/a",
                None,
            ),
            (
                401,
                vec![h("www-authenticate", CHALLENGE_INVALID_TOKEN)],
                true,
            ),
            Decision::Unauthenticated,
            "token_expired",
        ),
        (
            Rejection::unauthenticated(Reason::UnknownUser, true, false, "/a", None),
            (
                401,
                vec![h("www-authenticate", CHALLENGE_INVALID_TOKEN)],
                true,
            ),
            Decision::Unauthenticated,
            "unknown_user",
        ),
        (
            Rejection::rate_limited(LimitScope::Global, 3),
            (429, vec![h("retry-after", "3")], true),
            Decision::RateLimited,
            "rate_limit_global",
        ),
        (
            Rejection::rate_limited(LimitScope::Login, 0),
            (429, vec![h("retry-after", "1")], true),
            Decision::RateLimited,
            "rate_limit_login",
        ),
        (
            Rejection::rate_limited(LimitScope::Route(RateKey::User), 60),
            (429, vec![h("retry-after", "60")], true),
            Decision::RateLimited,
            "rate_limit",
        ),
        (
            Rejection::unavailable(Reason::RateLimitUnavailable),
            (503, vec![h("retry-after", "1")], true),
            Decision::Error,
            "rate_limit_unavailable",
        ),
        (
            Rejection::unavailable(Reason::DirectoryUnavailable),
            (503, vec![], true),
            Decision::Error,
            "directory_unavailable",
        ),
    ];
    for (rejection, want, decision, reason) in cases {
        assert_eq!(answer(&rejection), want, "{rejection:?}");
        assert_eq!(rejection.decision, decision, "{rejection:?}");
        assert_eq!(rejection.reason.as_str(), reason, "{rejection:?}");
    }
}

#[test]
fn the_challenges_name_the_realm() {
    assert_eq!(CHALLENGE, r#"Bearer realm="partnergate""#);
    assert_eq!(
        CHALLENGE_INVALID_TOKEN,
        r#"Bearer realm="partnergate", error="invalid_token""#
    );
}

#[test]
fn retry_after_is_never_below_one_second() {
    for (given, want) in [(0, 1), (1, 1), (2, 2), (900, 900)] {
        let r = Rejection::rate_limited(LimitScope::Global, given);
        assert_eq!(r.retry_after, Some(want), "{given}");
    }
}

/// The old `proxy/auth.rs` expectations, and what else the `rd` parameter must survive.
#[test]
fn login_location_percent_encodes_the_path_and_query() {
    let cases = [
        (
            "/clients/42",
            Some("a=1&b=2"),
            "/.partnergate/login?rd=/clients/42%3Fa%3D1%26b%3D2",
        ),
        ("/", None, "/.partnergate/login?rd=/"),
        ("/", Some(""), "/.partnergate/login?rd=/%3F"),
        ("/a-b_c.d~e/", None, "/.partnergate/login?rd=/a-b_c.d~e/"),
        // An escape already in the path is itself escaped (decoded once by the login page).
        ("/a%20b", None, "/.partnergate/login?rd=/a%2520b"),
        (
            "/x",
            Some("next=/y#z"),
            "/.partnergate/login?rd=/x%3Fnext%3D/y%23z",
        ),
        ("/x", Some("q=a+b"), "/.partnergate/login?rd=/x%3Fq%3Da%2Bb"),
        ("/x", Some("é"), "/.partnergate/login?rd=/x%3F%C3%A9"),
    ];
    for (path, query, want) in cases {
        assert_eq!(login_location(path, query), want, "{path:?} {query:?}");
        let r = Rejection::unauthenticated(Reason::NoCredentials, false, true, path, query);
        assert_eq!(r.location.as_deref(), Some(want));
    }
}

/// Makes a fresh failure for each case (`AuthFailure` is not `Clone`).
type MakeFailure = fn() -> AuthFailure;

#[test]
fn auth_failures_answer_a_browser_with_the_login_page_unless_a_token_was_refused() {
    let cases: [(MakeFailure, bool, u16, &str); 12] = [
        (|| AuthFailure::NoCredentials, true, 302, "no_credentials"),
        (|| AuthFailure::NoCredentials, false, 401, "no_credentials"),
        (
            || AuthFailure::Session(SessionFailure::Unknown),
            true,
            302,
            "unknown_session",
        ),
        (
            || AuthFailure::Session(SessionFailure::Expired),
            false,
            401,
            "session_expired",
        ),
        (
            || AuthFailure::Token(TokenProblem::from(&BearerError::BadSignature)),
            true,
            401,
            "bad_signature",
        ),
        (
            || AuthFailure::Token(TokenProblem::from(&BearerError::UnknownIssuer)),
            false,
            401,
            "unknown_issuer",
        ),
        (
            || AuthFailure::UnknownUser { bearer: true },
            true,
            401,
            "unknown_user",
        ),
        (
            || AuthFailure::UnknownUser { bearer: false },
            true,
            302,
            "unknown_user",
        ),
        (
            || AuthFailure::UnknownUser { bearer: false },
            false,
            401,
            "unknown_user",
        ),
        (
            || AuthFailure::Unavailable(StoreError::Unavailable("down".into())),
            true,
            503,
            "directory_unavailable",
        ),
        (
            || AuthFailure::Unavailable(StoreError::Unavailable("down".into())),
            false,
            503,
            "directory_unavailable",
        ),
        (
            || AuthFailure::from(StoreError::Unavailable("down".into())),
            false,
            503,
            "directory_unavailable",
        ),
    ];
    for (failure, browser, status, reason) in cases {
        let failure = failure();
        let r = failure.rejection(browser, "/deals", Some("x=1"));
        let what = format!("{failure:?} browser={browser}");
        assert_eq!((r.status, r.reason.as_str()), (status, reason), "{what}");
        assert_eq!(r.reason, failure.reason(), "{what}");
        let bad_token = matches!(
            failure,
            AuthFailure::Token(_) | AuthFailure::UnknownUser { bearer: true }
        );
        let want_challenge = match status {
            401 if bad_token => Some(CHALLENGE_INVALID_TOKEN),
            401 => Some(CHALLENGE),
            _ => None,
        };
        assert_eq!(r.challenge, want_challenge, "{what}");
        let want_location = (status == 302).then(|| login_location("/deals", Some("x=1")));
        assert_eq!(r.location, want_location, "{what}");
        assert_eq!(r.has_body(), status != 302, "{what}");
        let want_decision = if status == 503 {
            Decision::Error
        } else {
            Decision::Unauthenticated
        };
        assert_eq!(r.decision, want_decision, "{what}");
        assert_eq!(r.retry_after, None, "{what}");
    }
}

/// Every reason the gateway can give, one of each kind (a route limit's key does not
/// change its reason, so one stands for all).
fn representative_reasons() -> Vec<Reason> {
    let malformed = [
        Malformed::NotOriginForm,
        Malformed::EncodedSlash,
        Malformed::EncodedBackslash,
        Malformed::EncodedNul,
        Malformed::DoubleEncoding,
        Malformed::BadPercentEncoding,
        Malformed::ForbiddenByte,
        Malformed::BadHost,
    ];
    let tokens = [
        BearerError::TokenTooLarge,
        BearerError::MalformedToken,
        BearerError::UnknownIssuer,
        BearerError::AlgorithmNotAllowed,
        BearerError::KeysUnavailable,
        BearerError::UnknownKey,
        BearerError::BadSignature,
        BearerError::TokenExpired,
        BearerError::TokenNotYetValid,
        BearerError::WrongIssuer,
        BearerError::WrongAudience,
        BearerError::MissingClaim("email".into()),
        BearerError::InvalidClaim("exp".into()),
    ];
    let mut all: Vec<Reason> = malformed.into_iter().map(Reason::Malformed).collect();
    all.extend([
        Reason::Unparsable,
        Reason::HeaderTooLarge,
        Reason::Misdirected,
        Reason::BodyTooLarge,
    ]);
    all.extend(DenyReason::ALL.map(Reason::Policy));
    all.extend([
        Reason::WebSocketNotAllowed,
        Reason::NoCredentials,
        Reason::UnknownUser,
    ]);
    all.extend(
        [
            SessionFailure::Unknown,
            SessionFailure::Idle,
            SessionFailure::Expired,
        ]
        .map(Reason::Session),
    );
    all.extend(tokens.iter().map(|e| Reason::Token(TokenProblem::from(e))));
    all.extend(
        [
            LimitScope::Global,
            LimitScope::Login,
            LimitScope::Route(RateKey::Ip),
        ]
        .map(Reason::RateLimited),
    );
    all.extend([
        Reason::RateLimitUnavailable,
        Reason::DirectoryUnavailable,
        Reason::NoHealthyUpstream,
        Reason::UpstreamUnavailable,
        Reason::UpstreamTimeout,
        Reason::ClientClosed,
        Reason::Internal,
    ]);
    all
}

fn snake_case(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('_')
        && !name.ends_with('_')
        && !name.contains("__")
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

#[test]
fn reason_names_are_snake_case_and_unique() {
    let all = representative_reasons();
    assert_eq!(
        all.len(),
        8 + 4 + DenyReason::ALL.len() + 3 + 3 + 13 + 3 + 7
    );
    let mut seen = HashSet::new();
    for reason in &all {
        let name = reason.as_str();
        assert!(snake_case(name), "{reason:?}: {name:?}");
        assert!(seen.insert(name), "{reason:?}: {name:?} given twice");
    }
    // Route limits share one reason whatever their key.
    for key in RateKey::ALL {
        assert_eq!(
            Reason::RateLimited(LimitScope::Route(key)).as_str(),
            "rate_limit"
        );
    }
}

#[test]
fn decisions_index_their_position_in_all() {
    let mut names = HashSet::new();
    for (position, decision) in Decision::ALL.iter().enumerate() {
        assert_eq!(decision.index(), position, "{decision:?}");
        assert!(snake_case(decision.as_str()), "{decision:?}");
        assert!(names.insert(decision.as_str()), "{decision:?}");
    }
    let named: Vec<_> = Decision::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(
        named,
        [
            "allow",
            "deny",
            "shadow_deny",
            "unauthenticated",
            "ratelimited",
            "error"
        ]
    );
}

#[test]
fn limit_scopes_name_their_metric_key() {
    let cases = [
        (LimitScope::Global, "global"),
        (LimitScope::Login, "login"),
        (LimitScope::Route(RateKey::Ip), "ip"),
        (LimitScope::Route(RateKey::User), "user"),
        (LimitScope::Route(RateKey::Org), "org"),
        (LimitScope::Route(RateKey::Route), "route"),
    ];
    for (scope, key) in cases {
        assert_eq!(scope.key_label(), key, "{scope:?}");
    }
}
