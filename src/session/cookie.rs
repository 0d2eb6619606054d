//! Reading the session cookie out of `Cookie` headers and writing `Set-Cookie`.

/// The value of cookie `name` in a set of `Cookie` header values (first match).
pub fn find<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    headers.into_iter().find_map(|raw| {
        let text = std::str::from_utf8(raw).ok()?;
        text.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
    })
}

/// The value of cookie `name` in a request's `Cookie` headers (HTTP/2 sends several).
pub fn in_headers<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    find(
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .map(|v| v.as_bytes()),
        name,
    )
}

/// How cookies are scoped: `Secure` only when the public URL is https (the
/// `__Host-` prefix requires it; the validated config drops the prefix on plain HTTP).
#[derive(Debug, Clone, Copy)]
pub struct CookieScope {
    pub secure: bool,
}

/// A session cookie: HttpOnly, SameSite=Lax, Path=/, no Max-Age (ends with the browser;
/// the server enforces idle and absolute expiry).
pub fn set(name: &str, value: &str, scope: CookieScope) -> String {
    let secure = if scope.secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// A header that removes the cookie.
pub fn clear(name: &str, scope: CookieScope) -> String {
    let secure = if scope.secure { "; Secure" } else { "" };
    format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_cookie_among_others() {
        let headers: [&[u8]; 2] = [b"a=1; b=2", b"__Host-pg=tok; c=3"];
        assert_eq!(find(headers, "__Host-pg"), Some("tok"));
        assert_eq!(find(headers, "b"), Some("2"));
        assert_eq!(find(headers, "pg"), None);
        let bad: [&[u8]; 1] = [b"\xff\xfe=1; ;;=; x"];
        assert_eq!(find(bad, "x"), None);
    }

    #[test]
    fn flags() {
        let s = set("__Host-pg", "v", CookieScope { secure: true });
        assert_eq!(s, "__Host-pg=v; Path=/; HttpOnly; SameSite=Lax; Secure");
        assert!(clear("pg", CookieScope { secure: false }).contains("Max-Age=0"));
    }
}
