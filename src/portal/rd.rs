//! The `rd` (return-to) parameter: only same-origin relative paths, else `/`.

const MAX_RD: usize = 2048;

/// `rd` when it is a path on this origin (`/x…`, not `//x`, `/\x`, a scheme, or anything
/// with control characters or backslashes); otherwise `/`.
pub fn safe_redirect(rd: Option<&str>) -> String {
    match rd {
        Some(rd) if is_local_path(rd) => rd.to_string(),
        _ => "/".to_string(),
    }
}

fn is_local_path(rd: &str) -> bool {
    let bytes = rd.as_bytes();
    rd.len() <= MAX_RD
        && bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !rd.starts_with("/.partnergate/log")
        && bytes
            .iter()
            .all(|&b| b > 0x20 && b != 0x7f && b != b'\\' && b.is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_survive() {
        let cases = [
            (Some("/dashboard"), "/dashboard"),
            (
                Some("/clients/42/reports?x=1&y=2"),
                "/clients/42/reports?x=1&y=2",
            ),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example/"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("javascript:alert(1)"), "/"),
            (Some("/a\\b"), "/"),
            (Some("/a\r\nLocation: x"), "/"),
            (Some("/a b"), "/"),
            (Some(""), "/"),
            (Some("/.partnergate/logout"), "/"),
            (None, "/"),
        ];
        for (rd, want) in cases {
            assert_eq!(safe_redirect(rd), want, "{rd:?}");
        }
        assert_eq!(safe_redirect(Some(&format!("/{}", "a".repeat(3000)))), "/");
    }
}
