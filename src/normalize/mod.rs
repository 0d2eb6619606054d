//! Request-target, Host and header-name checks (docs/reference.md, Request path, stage 2).
//!
//! Pure and std-only on purpose: the fuzz crate includes this module directly, and the
//! proxy calls it on every request, so the already-normal case is checked without
//! allocating. [`strict`] holds the HTTP/1.1 request head as the client sent it to the
//! rules pingora's parser relaxes.

pub mod strict;

use std::borrow::Cow;
use std::fmt;

/// Why a request target or header was refused; every variant answers 400 except where noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The path does not start with `/`.
    NotOriginForm,
    /// `%2F` in the path: backends disagree on whether it separates segments.
    EncodedSlash,
    /// `%5C` in the path: some backends treat `\` as `/`.
    EncodedBackslash,
    /// `%00` in the path.
    EncodedNul,
    /// `%25` followed by two hex digits: a second decoding would change the path.
    DoubleEncoding,
    /// `%` not followed by two hex digits.
    BadPercentEncoding,
    /// A byte that is not visible ASCII, or a raw `\`.
    ForbiddenByte,
    /// The Host header / `:authority` is not a valid host.
    BadHost,
}

impl Malformed {
    /// Short snake_case reason for the access log.
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::NotOriginForm => "not_origin_form",
            Malformed::EncodedSlash => "encoded_slash",
            Malformed::EncodedBackslash => "encoded_backslash",
            Malformed::EncodedNul => "encoded_nul",
            Malformed::DoubleEncoding => "double_encoding",
            Malformed::BadPercentEncoding => "bad_percent_encoding",
            Malformed::ForbiddenByte => "forbidden_byte",
            Malformed::BadHost => "bad_host",
        }
    }

    /// The HTTP status the gateway answers with.
    pub fn status(self) -> u16 {
        400
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Malformed::NotOriginForm => "request path does not start with '/'",
            Malformed::EncodedSlash => "encoded '/' in request path",
            Malformed::EncodedBackslash => "encoded '\\' in request path",
            Malformed::EncodedNul => "encoded NUL in request path",
            Malformed::DoubleEncoding => "double percent-encoding in request path",
            Malformed::BadPercentEncoding => "'%' not followed by two hex digits in request path",
            Malformed::ForbiddenByte => "forbidden byte in request path",
            Malformed::BadHost => "invalid Host",
        };
        f.write_str(what)
    }
}

impl std::error::Error for Malformed {}

/// Normalise a request path (no query). Returns `Cow::Borrowed` when the input is already
/// normal (the common case must not allocate).
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, Malformed> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Malformed::NotOriginForm);
    }
    if is_normal(bytes)? {
        Ok(Cow::Borrowed(path))
    } else {
        rewrite(bytes).map(Cow::Owned)
    }
}

/// Split "path?query" and normalise the path; the query is returned unchanged (`Some("")`
/// for a bare "?").
pub fn normalize_target(target: &str) -> Result<(Cow<'_, str>, Option<&str>), Malformed> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    Ok((normalize_path(path)?, query))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Dot,
    Slash,
    Percent,
    Forbidden,
}

/// Byte classes for the path scan: visible ASCII is allowed, except a raw `\`.
const CLASS: [Class; 256] = byte_classes();

const fn byte_classes() -> [Class; 256] {
    let mut table = [Class::Forbidden; 256];
    let mut b = 0x21;
    while b <= 0x7E {
        table[b] = Class::Plain;
        b += 1;
    }
    table[b'.' as usize] = Class::Dot;
    table[b'/' as usize] = Class::Slash;
    table[b'%' as usize] = Class::Percent;
    table[b'\\' as usize] = Class::Forbidden;
    table
}

fn class(b: u8) -> Class {
    CLASS[usize::from(b)]
}

/// What the current segment looks like so far, to spot `//`, `/./` and `/../`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Empty,
    Dot,
    DotDot,
    Other,
}

impl Shape {
    fn push(self, class: Class) -> Shape {
        match (self, class) {
            (Shape::Empty, Class::Dot) => Shape::Dot,
            (Shape::Dot, Class::Dot) => Shape::DotDot,
            _ => Shape::Other,
        }
    }
}

/// `Ok(true)` when the path is already normal. Stops at the first thing to rewrite and
/// leaves the remaining checks to [`rewrite`].
fn is_normal(bytes: &[u8]) -> Result<bool, Malformed> {
    if is_plainly_normal(bytes) {
        return Ok(true);
    }
    scan(bytes)
}

/// The common case, in two branch-free passes the compiler vectorises: only visible ASCII
/// without '%' or '\\', and no '/' followed by '/' or '.'. Conservative: "/.well-known"
/// and canonical escapes fall through to [`scan`].
fn is_plainly_normal(bytes: &[u8]) -> bool {
    let plain = bytes.iter().fold(true, |ok, &b| {
        ok & (b.wrapping_sub(0x21) < 0x5E) & (b != b'%') & (b != b'\\')
    });
    let tail = bytes.get(1..).unwrap_or_default();
    let slash_then_dot_or_slash = bytes.iter().zip(tail).fold(false, |found, (&a, &b)| {
        found | ((a == b'/') & ((b == b'/') | (b == b'.')))
    });
    plain && !slash_then_dot_or_slash
}

/// Byte-by-byte check of what [`is_plainly_normal`] could not decide.
fn scan(bytes: &[u8]) -> Result<bool, Malformed> {
    let mut shape = Shape::Empty;
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match class(b) {
            Class::Plain | Class::Dot => {
                shape = shape.push(class(b));
                i += 1;
            }
            Class::Slash if shape == Shape::Other => {
                shape = Shape::Empty;
                i += 1;
            }
            Class::Slash => return Ok(false),
            Class::Percent => match read_escape(bytes, i)? {
                Escape::Kept {
                    canonical: true, ..
                } => {
                    shape = Shape::Other;
                    i += 3;
                }
                _ => return Ok(false),
            },
            Class::Forbidden => return Err(Malformed::ForbiddenByte),
        }
    }
    Ok(!matches!(shape, Shape::Dot | Shape::DotDot))
}

/// Build the normal form: decode each segment into `out`, then drop or pop it when it turns
/// out to be empty, `.` or `..` (RFC 3986 remove_dot_segments, with `//` merged).
fn rewrite(bytes: &[u8]) -> Result<String, Malformed> {
    let mut out = Vec::with_capacity(bytes.len());
    out.push(b'/');
    let mut mark = 1;
    let mut i = 1;
    loop {
        match bytes.get(i) {
            Some(&b) if matches!(class(b), Class::Plain | Class::Dot) => out.push(b),
            Some(b'%') => {
                match read_escape(bytes, i)? {
                    Escape::Unreserved(c) => out.push(c),
                    Escape::Kept { value, .. } => out.extend_from_slice(&encode(value)),
                }
                i += 2;
            }
            Some(b'/') => {
                end_segment(&mut out, mark);
                mark = out.len();
            }
            Some(_) => return Err(Malformed::ForbiddenByte),
            None => break,
        }
        i += 1;
    }
    // Every kept segment is followed by '/'; the last one keeps it only if the input had it.
    if end_segment(&mut out, mark) {
        out.pop();
    }
    String::from_utf8(out).map_err(|_| Malformed::ForbiddenByte)
}

/// Close the segment written to `out` from `mark`: drop it when empty or `.`, pop its
/// parent too when `..`, else keep it and add a '/'. Returns whether it was kept.
fn end_segment(out: &mut Vec<u8>, mark: usize) -> bool {
    match out.get(mark..) {
        Some([] | [b'.']) => {
            out.truncate(mark);
            false
        }
        Some([b'.', b'.']) => {
            pop_segment(out, mark);
            false
        }
        _ => {
            out.push(b'/');
            true
        }
    }
}

/// Remove the `..` just written at `mark` and the segment before it (none at the root).
fn pop_segment(out: &mut Vec<u8>, mark: usize) {
    let parent_end = mark.saturating_sub(1);
    let keep = out
        .get(..parent_end)
        .and_then(|kept| kept.iter().rposition(|&b| b == b'/'))
        .map_or(1, |slash| slash + 1);
    out.truncate(keep);
}

enum Escape {
    /// An escaped unreserved character, to be decoded.
    Unreserved(u8),
    /// Any other escape, kept; `canonical` when its hex digits are already upper case.
    Kept { value: u8, canonical: bool },
}

/// Read the escape at `bytes[i] == b'%'`.
fn read_escape(bytes: &[u8], i: usize) -> Result<Escape, Malformed> {
    let value = escape_value(bytes, i).ok_or(Malformed::BadPercentEncoding)?;
    match value {
        b'/' => Err(Malformed::EncodedSlash),
        b'\\' => Err(Malformed::EncodedBackslash),
        0 => Err(Malformed::EncodedNul),
        b'%' if followed_by_hex_pair(bytes, i + 3) => Err(Malformed::DoubleEncoding),
        v if is_unreserved(v) => Ok(Escape::Unreserved(v)),
        value => {
            let digits = bytes.get(i + 1..i + 3).unwrap_or_default();
            let canonical = !digits.iter().any(u8::is_ascii_lowercase);
            Ok(Escape::Kept { value, canonical })
        }
    }
}

fn escape_value(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(i + 1)?)?;
    let lo = hex_value(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// Whether the next two characters, once decoded, are hex digits: "%25" there would turn
/// into a new escape on a second decoding ("%2541", and also "%25%34%31").
fn followed_by_hex_pair(bytes: &[u8], i: usize) -> bool {
    let decoded_hex = |at: usize| match bytes.get(at) {
        Some(b'%') => escape_value(bytes, at)
            .filter(u8::is_ascii_hexdigit)
            .map(|_| 3),
        Some(b) if b.is_ascii_hexdigit() => Some(1),
        _ => None,
    };
    decoded_hex(i)
        .and_then(|len| decoded_hex(i + len))
        .is_some()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn encode(value: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [
        b'%',
        HEX[usize::from(value >> 4)],
        HEX[usize::from(value & 0x0F)],
    ]
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Validate a Host header / `:authority` value and return the lower-cased host name
/// without port. Bracketed IPv6 literals keep their brackets ("[::1]:80" → "[::1]").
pub fn normalize_host(host: &str) -> Result<Cow<'_, str>, Malformed> {
    let (name, port) = split_port(host)?;
    if let Some(port) = port {
        check_port(port)?;
    }
    let name = if name.starts_with('[') {
        name
    } else {
        check_reg_name(name)?
    };
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(name))
    }
}

fn split_port(host: &str) -> Result<(&str, Option<&str>), Malformed> {
    let Some(bracketed) = host.strip_prefix('[') else {
        return Ok(match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        });
    };
    let (literal, rest) = bracketed.split_once(']').ok_or(Malformed::BadHost)?;
    if literal.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(Malformed::BadHost);
    }
    let name = host.get(..literal.len() + 2).ok_or(Malformed::BadHost)?;
    match rest {
        "" => Ok((name, None)),
        _ => Ok((
            name,
            Some(rest.strip_prefix(':').ok_or(Malformed::BadHost)?),
        )),
    }
}

fn check_port(port: &str) -> Result<(), Malformed> {
    let digits_ok = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u32>() {
        Ok(n) if digits_ok && n <= 65535 => Ok(()),
        _ => Err(Malformed::BadHost),
    }
}

/// Letters, digits, '-' and '.', in non-empty labels of at most 63 bytes; one trailing dot
/// is removed.
fn check_reg_name(name: &str) -> Result<&str, Malformed> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(Malformed::BadHost);
    }
    Ok(name)
}

/// true for any header that claims to be gateway-set identity: names starting with
/// "x-partner-" or "x_partner_" in any case (also mixes like "X-Partner_User").
pub fn is_partner_header(name: &str) -> bool {
    let Some(prefix) = name.as_bytes().get(..10) else {
        return false;
    };
    prefix
        .iter()
        .zip(b"x-partner-")
        .all(|(&got, &want)| match want {
            b'-' => got == b'-' || got == b'_',
            _ => got.to_ascii_lowercase() == want,
        })
}

/// RFC 9110 hop-by-hop fields (any case).
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    ];
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The header names listed in a Connection header value (comma separated, trimmed, empty
/// items skipped), as given.
pub fn connection_tokens(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|item| item.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|item| !item.is_empty())
}

/// A client-supplied X-Request-Id we may keep (only from trusted proxies): 1..=128 chars of
/// `[A-Za-z0-9._:-]`.
pub fn is_valid_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Malformed::*;

    #[test]
    fn already_normal_paths_are_borrowed() {
        let cases = [
            "/",
            "/dashboard",
            "/a/b/",
            "/clients/client-42/reports/2026",
            "/a/%3A",
            "/%C3%A9",
            "/%20",
            "/%25",
            "/%25zz",
            "/%25%3A",
            "/%254/",
            "/a;b=c/+d:e,f",
            "/...",
            "/.a/..b/c.",
            "/~user/a_b-c.d",
        ];
        for input in cases {
            let got = normalize_path(input);
            assert!(
                matches!(got, Ok(Cow::Borrowed(s)) if s == input),
                "{input:?} -> {got:?}"
            );
        }
    }

    #[test]
    fn paths_are_rewritten() {
        let cases = [
            ("/a//b", "/a/b"),
            ("//", "/"),
            ("///a///", "/a/"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/.", "/"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/../../../c", "/c"),
            ("/a/%2e%2e/b", "/b"),
            ("/.%2E/x", "/x"),
            ("/%2e", "/"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/../", "/a/"),
            ("/a/b/./", "/a/b/"),
            ("/a/..", "/"),
            ("/a%41", "/aA"),
            ("/%3a", "/%3A"),
            ("/%c3%a9", "/%C3%A9"),
            ("/%7Euser/%41%42", "/~user/AB"),
            ("/%2D%2e%5F%7e%30%7A", "/-._~0z"),
            ("/%25%3a", "/%25%3A"),
            ("/a/./b/../c//d/%7Euser/%41%42", "/a/c/d/~user/AB"),
        ];
        for (input, want) in cases {
            let got = normalize_path(input);
            assert!(
                matches!(&got, Ok(Cow::Owned(s)) if s == want),
                "{input:?} -> {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn malformed_paths_are_refused() {
        let cases = [
            ("", NotOriginForm),
            ("a/b", NotOriginForm),
            ("*", NotOriginForm),
            ("http://example.com/", NotOriginForm),
            ("%2F", NotOriginForm),
            ("/%2F", EncodedSlash),
            ("/%2f", EncodedSlash),
            ("/a/%2E%2e%2fb", EncodedSlash),
            ("/..%2f", EncodedSlash),
            ("/a/../%2F", EncodedSlash),
            ("/%41/%2f", EncodedSlash),
            ("/%5c", EncodedBackslash),
            ("/%5C", EncodedBackslash),
            ("/%00", EncodedNul),
            ("/%252e", DoubleEncoding),
            ("/%252F", DoubleEncoding),
            ("/%2541", DoubleEncoding),
            ("/%2525", DoubleEncoding),
            ("/%25%34%31", DoubleEncoding),
            ("/%25a%46", DoubleEncoding),
            ("/x/%2e/%25ff", DoubleEncoding),
            ("/%zz", BadPercentEncoding),
            ("/%4", BadPercentEncoding),
            ("/%", BadPercentEncoding),
            ("/a%g0", BadPercentEncoding),
            ("/%%41", BadPercentEncoding),
            ("/%4/1", BadPercentEncoding),
            ("/a b", ForbiddenByte),
            ("/a\\b", ForbiddenByte),
            ("/é", ForbiddenByte),
            ("/a\tb", ForbiddenByte),
            ("/a\r\nb", ForbiddenByte),
            ("/a\x7F", ForbiddenByte),
            ("/a\0", ForbiddenByte),
            ("/./a b", ForbiddenByte),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn targets_split_off_the_query_unchanged() {
        let cases = [
            ("/a?b=1", Ok(("/a", Some("b=1")))),
            ("/a?", Ok(("/a", Some("")))),
            ("/a", Ok(("/a", None))),
            ("/a/../b?x=/../%2F", Ok(("/b", Some("x=/../%2F")))),
            ("/a?b?c", Ok(("/a", Some("b?c")))),
            (
                "/clients/client-42/reports/2026?x=1",
                Ok(("/clients/client-42/reports/2026", Some("x=1"))),
            ),
            ("?x", Err(NotOriginForm)),
            ("/%2f?x", Err(EncodedSlash)),
        ];
        for (input, want) in cases {
            let got = normalize_target(input);
            let got = got.as_ref().map(|(p, q)| (p.as_ref(), *q)).map_err(|e| *e);
            assert_eq!(got, want, "{input:?}");
        }
        assert!(matches!(
            normalize_target("/a?b"),
            Ok((Cow::Borrowed(_), _))
        ));
    }

    #[test]
    fn hosts() {
        let ok = [
            ("Example.COM:8443", "example.com"),
            ("example.com", "example.com"),
            ("example.com.", "example.com"),
            ("example.com.:443", "example.com"),
            ("localhost", "localhost"),
            ("a-b.c1", "a-b.c1"),
            ("127.0.0.1:8080", "127.0.0.1"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("[2001:DB8::1]:8443", "[2001:db8::1]"),
            ("[::ffff:10.0.0.1]", "[::ffff:10.0.0.1]"),
            ("host:65535", "host"),
            ("host:0", "host"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize_host(input).as_deref(), Ok(want), "{input:?}");
        }
        assert!(matches!(
            normalize_host("example.com:80"),
            Ok(Cow::Borrowed(_))
        ));
        let long_label = "a".repeat(64);
        let long_name = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        let bad = [
            "",
            "a@b",
            "user@example.com",
            "exa mple.com",
            ":80",
            "host:99999",
            "host:65536",
            "host:",
            "host:123456",
            "host:8a",
            "host:-1",
            "host:+80",
            "a:1:2",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[::1]:99999",
            "[zz]",
            "[]",
            "[fe80::1%eth0]",
            "[1.2.3.4]",
            "::1",
            "a..b",
            ".",
            "..",
            ".example.com",
            "example.com..",
            "ex_ample.com",
            "a/b",
            "a\tb",
            "exämple.com",
            "a\0",
            long_label.as_str(),
            long_name.as_str(),
        ];
        for input in bad {
            assert_eq!(normalize_host(input), Err(BadHost), "{input:?}");
        }
    }

    #[test]
    fn partner_headers() {
        let cases = [
            ("X-Partner-User", true),
            ("x-partner-org", true),
            ("x_partner_org", true),
            ("X-Partner_User", true),
            ("x_PARTNER-roles", true),
            ("X-Partner-Assertion", true),
            ("x-partner-", true),
            ("x-partner", false),
            ("x-partners-user", false),
            ("x-partnerXuser", false),
            ("xx-partner-a", false),
            ("partner-user", false),
            ("x-forwarded-for", false),
            ("x-pärtner-user", false),
            ("", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_partner_header(name), want, "{name:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers() {
        let cases = [
            ("connection", true),
            ("Keep-Alive", true),
            ("Proxy-Connection", true),
            ("TE", true),
            ("trailer", true),
            ("Transfer-Encoding", true),
            ("UPGRADE", true),
            ("proxy-authenticate", true),
            ("Proxy-Authorization", true),
            ("content-type", false),
            ("trailers", false),
            ("tes", false),
            ("authorization", false),
            ("", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_hop_by_hop(name), want, "{name:?}");
        }
    }

    #[test]
    fn connection_header_tokens() {
        let cases: [(&str, &[&str]); 5] = [
            ("close", &["close"]),
            (
                " keep-alive , X-Foo ,, ,Upgrade",
                &["keep-alive", "X-Foo", "Upgrade"],
            ),
            ("a,\tb\t", &["a", "b"]),
            ("", &[]),
            (" , ", &[]),
        ];
        for (value, want) in cases {
            assert_eq!(
                connection_tokens(value).collect::<Vec<_>>(),
                want,
                "{value:?}"
            );
        }
    }

    #[test]
    fn request_ids() {
        let max = "a".repeat(128);
        let too_long = "a".repeat(129);
        let cases = [
            ("abc", true),
            ("0123-abcd_EF.gh:ij", true),
            (max.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("a b", false),
            ("a/b", false),
            ("a,b", false),
            ("a\n", false),
            ("é", false),
        ];
        for (id, want) in cases {
            assert_eq!(is_valid_request_id(id), want, "{id:?}");
        }
    }

    #[test]
    fn reasons_and_messages() {
        let all = [
            NotOriginForm,
            EncodedSlash,
            EncodedBackslash,
            EncodedNul,
            DoubleEncoding,
            BadPercentEncoding,
            ForbiddenByte,
            BadHost,
        ];
        let mut reasons: Vec<_> = all.iter().map(|m| m.reason()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(EncodedSlash.reason(), "encoded_slash");
        for m in all {
            assert!(m
                .reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!m.to_string().is_empty());
            assert_eq!(m.status(), 400);
        }
    }

    /// A slow, obviously-correct model of the path rules to compare against.
    fn model(path: &str) -> Result<String, Malformed> {
        let bytes = path.as_bytes();
        if bytes.first() != Some(&b'/') {
            return Err(NotOriginForm);
        }
        // Units up to the first syntax error: (value, was escaped).
        let mut units = Vec::new();
        let mut syntax_error = None;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = |j: usize| bytes.get(j).and_then(|&h| char::from(h).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(h), Some(l)) => units.push(((h * 16 + l) as u8, true)),
                    _ => {
                        syntax_error = Some(BadPercentEncoding);
                        break;
                    }
                }
                i += 3;
            } else if !(0x21..=0x7E).contains(&b) || b == b'\\' {
                syntax_error = Some(ForbiddenByte);
                break;
            } else {
                units.push((b, false));
                i += 1;
            }
        }
        for (k, &(v, escaped)) in units.iter().enumerate() {
            let hex_at = |j: usize| {
                units
                    .get(j)
                    .is_some_and(|u: &(u8, bool)| u.0.is_ascii_hexdigit())
            };
            match (v, escaped) {
                (b'/', true) => return Err(EncodedSlash),
                (b'\\', true) => return Err(EncodedBackslash),
                (0, true) => return Err(EncodedNul),
                (b'%', true) if hex_at(k + 1) && hex_at(k + 2) => return Err(DoubleEncoding),
                _ => {}
            }
        }
        if let Some(e) = syntax_error {
            return Err(e);
        }
        let mut text = String::new();
        for &(v, escaped) in &units[1..] {
            if escaped && !is_unreserved(v) {
                text.push_str(&format!("%{v:02X}"));
            } else {
                text.push(char::from(v));
            }
        }
        let segments: Vec<&str> = text.split('/').collect();
        let mut stack: Vec<&str> = Vec::new();
        let mut trailing = false;
        for (k, s) in segments.iter().enumerate() {
            let last = k + 1 == segments.len();
            match *s {
                "" | "." => trailing = last,
                ".." => {
                    stack.pop();
                    trailing = last;
                }
                s => {
                    stack.push(s);
                    trailing = false;
                }
            }
        }
        let mut out = format!("/{}", stack.join("/"));
        if trailing && !stack.is_empty() {
            out.push('/');
        }
        Ok(out)
    }

    fn assert_normal(input: &str, out: &str) {
        assert!(out.starts_with('/'), "{input:?} -> {out:?}");
        assert!(!out.contains("//"), "{input:?} -> {out:?}");
        assert!(
            out.split('/').all(|s| s != "." && s != ".."),
            "{input:?} -> {out:?}"
        );
        let upper = out.to_ascii_uppercase();
        for bad in ["%2F", "%5C", "%00", "\\"] {
            assert!(!upper.contains(bad), "{input:?} -> {out:?}");
        }
        assert!(
            out.bytes().all(|b| (0x21..=0x7E).contains(&b)),
            "{input:?} -> {out:?}"
        );
        // Idempotent, and the fast path recognises every output as already normal.
        assert!(
            matches!(normalize_path(out), Ok(Cow::Borrowed(s)) if s == out),
            "{input:?} -> {out:?} -> {:?}",
            normalize_path(out)
        );
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_path(rng: &mut XorShift) -> String {
        const GOOD: &[&str] = &[
            "/", "/", "/", ".", ".", "..", "%2e", "%2E", "%25", "%41", "%7e", "%3a", "%3A", "%34",
            "%c3%a9", "a", "Z", "0", "f", "F", "e", "E", "4", "~", "-", "_", ";", "?", "+",
        ];
        const BAD: &[&str] = &["%", "%2", "%2f", "%5c", "%00", " ", "\\", "é", "\t", "\x7F"];
        let mut s = String::new();
        if rng.below(16) != 0 {
            s.push('/');
        }
        if rng.below(10) == 0 {
            for _ in 0..rng.below(24) {
                s.push(char::from(rng.below(128) as u8));
            }
            return s;
        }
        for _ in 0..rng.below(20) {
            let pieces = if rng.below(24) == 0 { BAD } else { GOOD };
            s.push_str(pieces[rng.below(pieces.len())]);
        }
        s
    }

    #[test]
    fn random_paths_keep_the_invariants_and_match_the_model() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut borrowed, mut owned) = (0, 0);
        let mut refused = std::collections::HashMap::new();
        for _ in 0..50_000 {
            let input = random_path(&mut rng);
            let got = normalize_path(&input);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                model(&input).as_deref().map_err(|e| *e),
                "{input:?}"
            );
            match &got {
                Ok(Cow::Borrowed(out)) => {
                    borrowed += 1;
                    assert_eq!(*out, input);
                    assert_normal(&input, out);
                }
                Ok(Cow::Owned(out)) => {
                    owned += 1;
                    assert_normal(&input, out);
                }
                Err(e) => *refused.entry(e.reason()).or_insert(0) += 1,
            }
            let _ = normalize_target(&input);
            let _ = normalize_host(&input);
        }
        // The generator must reach every outcome, not only the refusals.
        assert!(
            borrowed > 1_000 && owned > 10_000,
            "{borrowed} borrowed, {owned} owned"
        );
        assert_eq!(refused.len(), 7, "{refused:?}");
    }
}
