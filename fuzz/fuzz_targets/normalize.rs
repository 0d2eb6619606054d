//! Arbitrary bytes through every function of `src/normalize/`: no panic, and every
//! accepted path satisfies the invariants the proxy and the policy rely on.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;

#[path = "../../src/normalize/mod.rs"]
mod normalize;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    check_target(&input);
    check_host(&input);
    check_headers(&input);
    check_head(data);
});

fn check_target(input: &str) {
    if let Ok(out) = normalize::normalize_path(input) {
        if let Cow::Borrowed(s) = out {
            assert_eq!(s, input, "borrowed output differs from the input");
        }
        assert_normal(input, &out);
    }
    match normalize::normalize_target(input) {
        Ok((path, query)) => {
            assert_normal(input, &path);
            let (_, want_query) = split_query(input);
            assert_eq!(query, want_query);
        }
        Err(e) => {
            assert_eq!(normalize::normalize_path(split_query(input).0), Err(e));
            assert!(!e.reason().is_empty() && !e.to_string().is_empty());
            assert_eq!(e.status(), 400);
        }
    }
}

fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

fn assert_normal(input: &str, out: &str) {
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    assert!(!out.contains("//"), "{input:?} -> {out:?}");
    assert!(
        out.split('/').all(|s| s != "." && s != ".."),
        "{input:?} -> {out:?}"
    );
    assert!(
        out.bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b'\\'),
        "{input:?} -> {out:?}"
    );
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00"] {
        assert!(!upper.contains(bad), "{input:?} -> {out:?}");
    }
    // Idempotent, and recognised as already normal without a rewrite.
    match normalize::normalize_path(out) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, out, "{input:?}"),
        other => panic!("{input:?} -> {out:?} -> {other:?}"),
    }
}

fn check_host(input: &str) {
    let Ok(host) = normalize::normalize_host(input) else {
        return;
    };
    assert!(!host.is_empty(), "{input:?}");
    assert!(
        !host.bytes().any(|b| b.is_ascii_uppercase()),
        "{input:?} -> {host:?}"
    );
    assert!(
        !host.contains(['@', ' ', '/', '\\', '?', '#']),
        "{input:?} -> {host:?}"
    );
    if !host.starts_with('[') {
        assert!(
            !host.contains(':') && !host.ends_with('.'),
            "{input:?} -> {host:?}"
        );
    }
    assert_eq!(
        normalize::normalize_host(&host).as_deref(),
        Ok(&*host),
        "{input:?}"
    );
}

fn check_headers(input: &str) {
    if normalize::is_partner_header(input) {
        let prefix = input
            .get(..10)
            .map(|p| p.to_ascii_lowercase().replace('_', "-"));
        assert_eq!(prefix.as_deref(), Some("x-partner-"), "{input:?}");
    }
    if normalize::is_hop_by_hop(input) {
        assert!(input.len() <= 19, "{input:?}");
    }
    for token in normalize::connection_tokens(input) {
        assert!(!token.is_empty() && !token.contains(','), "{input:?}");
        assert!(!token.starts_with([' ', '\t']) && !token.ends_with([' ', '\t']));
    }
    if normalize::is_valid_request_id(input) {
        assert!((1..=128).contains(&input.len()), "{input:?}");
    }
}

/// The strict head check on raw bytes, whole and fed to the head-end finder in two pieces:
/// the end found never lies outside the bytes, and does not depend on where they split.
fn check_head(data: &[u8]) {
    let _ = normalize::strict::check_head(data);
    let whole = normalize::strict::HeadEnd::new().feed(data);
    if let Some(n) = whole {
        assert!(n <= data.len());
    }
    let split = data.len() / 2;
    let mut end = normalize::strict::HeadEnd::new();
    let pieces = match end.feed(&data[..split]) {
        Some(n) => Some(n),
        None => end.feed(&data[split..]).map(|n| n + split),
    };
    assert_eq!(pieces, whole, "{data:?}");
}
