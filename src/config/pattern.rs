//! Route match patterns: hosts (exact or `*.domain`) and path prefixes with an optional
//! `{account}` capture. Pure data plus matching, no I/O.

use std::fmt;

/// A route's `host`: an exact name or every subdomain of a domain (`*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// Stored with its leading dot: `*.example.com` → `.example.com`.
    Subdomains(String),
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.trim().to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
        let (pattern, name) = match lower.strip_prefix("*.") {
            Some(rest) => (
                HostPattern::Subdomains(format!(".{rest}")),
                rest.to_string(),
            ),
            None => (HostPattern::Exact(lower.clone()), lower),
        };
        if !valid_host_name(&name) {
            return Err(format!(
                "\"{raw}\" is not a host name (letters, digits, '-' and '.', optionally \"*.\" first; no port)"
            ));
        }
        Ok(pattern)
    }

    /// `host` must already be lower-case without port (see `normalize::normalize_host`).
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }

    /// True when every host this pattern matches is also matched by `other`'s superset check.
    pub fn is_covered_by(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
            (HostPattern::Exact(a), sub @ HostPattern::Subdomains(_)) => sub.matches(a),
            (HostPattern::Subdomains(a), HostPattern::Subdomains(b)) => a.ends_with(b.as_str()),
            (HostPattern::Subdomains(_), HostPattern::Exact(_)) => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Subdomains(suffix) => write!(f, "*{suffix}"),
        }
    }
}

fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// One piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `{account}`: one non-empty path segment.
    Account,
}

/// A route's `path`: a prefix of the normalised path, possibly with one `{account}`
/// segment capture (`/clients/{account}/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    raw: String,
    pieces: Vec<Piece>,
}

/// What a matching path template captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathCaptures<'a> {
    pub account: Option<&'a str>,
}

impl PathTemplate {
    /// A template of one literal prefix (no capture), e.g. for built-in routes.
    pub fn literal(prefix: &str) -> Self {
        PathTemplate {
            raw: prefix.to_string(),
            pieces: vec![Piece::Literal(prefix.to_string())],
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("\"{raw}\" must start with '/'"));
        }
        let mut pieces = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|i| open + i)
                .ok_or_else(|| format!("\"{raw}\": '{{' without '}}'"))?;
            let name = &rest[open + 1..close];
            if name != "account" {
                return Err(format!(
                    "\"{raw}\": unknown capture {{{name}}} (only {{account}} is supported)"
                ));
            }
            if pieces.contains(&Piece::Account) {
                return Err(format!("\"{raw}\": {{account}} may appear only once"));
            }
            if !rest[..open].ends_with('/') {
                return Err(format!(
                    "\"{raw}\": {{account}} must be a whole path segment"
                ));
            }
            let after = &rest[close + 1..];
            if !(after.is_empty() || after.starts_with('/')) {
                return Err(format!(
                    "\"{raw}\": {{account}} must be a whole path segment"
                ));
            }
            pieces.push(Piece::Literal(rest[..open].to_string()));
            pieces.push(Piece::Account);
            rest = after;
        }
        if rest.contains('}') {
            return Err(format!("\"{raw}\": '}}' without '{{'"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_string()));
        }
        Ok(PathTemplate {
            raw: raw.to_string(),
            pieces,
        })
    }

    /// `/`: matches every path.
    pub fn root() -> Self {
        PathTemplate {
            raw: "/".into(),
            pieces: vec![Piece::Literal("/".into())],
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn has_account(&self) -> bool {
        self.pieces.contains(&Piece::Account)
    }

    /// The literal text before any capture: what a `strip_prefix` may remove.
    pub fn literal_prefix(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Literal(text)) => text,
            _ => "",
        }
    }

    /// Prefix match against a normalised path.
    pub fn matches<'a>(&self, path: &'a str) -> Option<PathCaptures<'a>> {
        let mut captures = PathCaptures::default();
        let mut rest = path;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => rest = rest.strip_prefix(text.as_str())?,
                Piece::Account => {
                    let end = rest.find('/').unwrap_or(rest.len());
                    if end == 0 {
                        return None;
                    }
                    captures.account = Some(&rest[..end]);
                    rest = &rest[end..];
                }
            }
        }
        Some(captures)
    }

    /// True when every path this template matches is also matched by `other`.
    /// Conservative: templates with captures are compared by their literal prefix only
    /// when `other` has no capture.
    pub fn is_covered_by(&self, other: &PathTemplate) -> bool {
        if other.has_account() {
            return self.raw.starts_with(&other.raw)
                || (self.pieces.len() >= other.pieces.len()
                    && self.pieces[..other.pieces.len() - 1]
                        == other.pieces[..other.pieces.len() - 1]
                    && match (other.pieces.last(), self.pieces.get(other.pieces.len() - 1)) {
                        (Some(Piece::Literal(o)), Some(Piece::Literal(s))) => {
                            s.starts_with(o.as_str())
                        }
                        (Some(Piece::Account), Some(Piece::Account)) => true,
                        _ => false,
                    });
        }
        self.literal_prefix().starts_with(other.as_str())
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("partners.example.com", "partners.example.com", true),
            ("Partners.Example.com", "partners.example.com", true),
            ("partners.example.com", "x.partners.example.com", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "badexample.com", false),
            ("*.example.com", ".example.com", false),
        ];
        for (pattern, host, want) in cases {
            let p = HostPattern::parse(pattern).expect("valid pattern");
            assert_eq!(p.matches(host), *want, "{pattern} vs {host}");
        }
        for bad in [
            "",
            "*",
            "a b",
            "host:80",
            "*.",
            "a..b",
            "x.*.com",
            "ex_ample.com",
        ] {
            assert!(
                HostPattern::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn path_templates() {
        let cases: &[(&str, &str, Option<Option<&str>>)] = &[
            ("/", "/anything", Some(None)),
            ("/dashboard", "/dashboard", Some(None)),
            ("/dashboard", "/dashboard/x", Some(None)),
            ("/dashboard", "/dash", None),
            ("/clients/{account}/", "/clients/c-42/", Some(Some("c-42"))),
            (
                "/clients/{account}/",
                "/clients/c-42/reports",
                Some(Some("c-42")),
            ),
            ("/clients/{account}/", "/clients/c-42", None),
            ("/clients/{account}/", "/clients//", None),
            ("/clients/{account}", "/clients/c-42", Some(Some("c-42"))),
            ("/clients/{account}", "/clients/c-42/x", Some(Some("c-42"))),
            ("/a/{account}/b", "/a/x/b/c", Some(Some("x"))),
            ("/a/{account}/b", "/a/x/c", None),
        ];
        for (template, path, want) in cases {
            let t = PathTemplate::parse(template).expect("valid template");
            assert_eq!(
                t.matches(path).map(|c| c.account),
                *want,
                "{template} vs {path}"
            );
        }
        for bad in [
            "clients",
            "/c/{user}/",
            "/c/{account}{account}",
            "/c/x{account}/",
            "/c/{account}x",
            "/c/{account",
            "/c/}",
        ] {
            assert!(
                PathTemplate::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn coverage_for_shadow_warnings() {
        let t = |s: &str| PathTemplate::parse(s).expect("valid");
        assert!(t("/dashboard/x").is_covered_by(&t("/dashboard")));
        assert!(t("/clients/{account}/x").is_covered_by(&t("/clients/")));
        assert!(t("/clients/{account}/x").is_covered_by(&t("/clients/{account}/")));
        assert!(!t("/clients/").is_covered_by(&t("/clients/{account}/")));
        assert!(!t("/a").is_covered_by(&t("/b")));
        let h = |s: &str| HostPattern::parse(s).expect("valid");
        assert!(h("a.example.com").is_covered_by(&h("*.example.com")));
        assert!(h("*.a.example.com").is_covered_by(&h("*.example.com")));
        assert!(!h("*.example.com").is_covered_by(&h("a.example.com")));
    }
}
