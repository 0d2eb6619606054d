//! The HTTP/1.1 request head exactly as the client sent it, held to RFC 9112 where
//! pingora's parser is lenient.
//!
//! pingora (through httparse) already refuses obs-fold, whitespace before a colon, more
//! than 256 fields, conflicting or unparsable `Content-Length` values and a final
//! transfer coding other than `chunked`. It accepts, and forwards, several heads that
//! front-end and back-end parsers are known to read differently, which is how request
//! smuggling starts:
//!
//! - a request-target with a space, a tab or a control byte (`GET /a b HTTP/1.1`): pingora
//!   percent-encodes it and forwards `/a%20b`, so nothing after parsing shows it was there;
//! - bare LF line endings (RFC 9112 §2.2 lets a recipient accept them; a gateway in front
//!   of legacy servers should not);
//! - absolute-form and other targets that are not origin-form (pingora keeps only the
//!   path of `http://host/path`, or `/` for an opaque target);
//! - `Content-Length` twice with the same value, or as a list (`5, 5`): RFC 9110 §8.6
//!   allows collapsing them, and pingora does, but forwards both fields;
//! - `Content-Length` together with `Transfer-Encoding` (RFC 9112 §6.3: "ought to be
//!   handled as an error"; pingora drops the `Content-Length` and goes on);
//! - `Transfer-Encoding` other than one plain `chunked` (`gzip, chunked`,
//!   `chunked, chunked`, `chunked` twice, `Chunked ` with trailing whitespace).
//!
//! Everything here is pure and std-only: the wire layer copies the head as it arrives
//! ([`HeadEnd`] finds where it stops) and the proxy checks the copy with [`check_head`].

use std::fmt;

/// Why a request head was refused; every variant answers 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// The request line is not exactly `method SP request-target SP HTTP-version`: a
    /// space or tab inside the target (`GET /a b HTTP/1.1`), doubled, leading or trailing
    /// spaces, a tab or other whitespace, or a missing part.
    BadRequestLine,
    /// A control or non-ASCII byte in the request line (pingora would percent-encode a
    /// control byte and forward it).
    ForbiddenByte,
    /// A line ends in LF without the CR before it.
    BareLf,
    /// The target is not origin-form (`/path?query`): absolute-form
    /// (`http://host/path`), authority-form (`host:port`), asterisk-form (`*`) or opaque.
    NotOriginForm,
    /// `Content-Length` appears more than once, or holds a list.
    DuplicateContentLength,
    /// `Content-Length` and `Transfer-Encoding` together.
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` other than one field whose value is `chunked`.
    TransferEncodingNotChunked,
}

impl Strictness {
    /// Short snake_case reason for the access log.
    pub fn reason(self) -> &'static str {
        match self {
            Strictness::BadRequestLine => "bad_request_line",
            Strictness::ForbiddenByte => "forbidden_byte",
            Strictness::BareLf => "bare_lf",
            Strictness::NotOriginForm => "not_origin_form",
            Strictness::DuplicateContentLength => "duplicate_content_length",
            Strictness::ContentLengthWithTransferEncoding => {
                "content_length_with_transfer_encoding"
            }
            Strictness::TransferEncodingNotChunked => "transfer_encoding_not_chunked",
        }
    }

    /// The HTTP status the gateway answers with.
    pub fn status(self) -> u16 {
        400
    }
}

impl fmt::Display for Strictness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Strictness::BadRequestLine => "request line is not method, target and version",
            Strictness::ForbiddenByte => "control or non-ASCII byte in the request line",
            Strictness::BareLf => "line ending without CR",
            Strictness::NotOriginForm => "request target is not origin-form",
            Strictness::DuplicateContentLength => "more than one Content-Length",
            Strictness::ContentLengthWithTransferEncoding => {
                "Content-Length together with Transfer-Encoding"
            }
            Strictness::TransferEncodingNotChunked => "Transfer-Encoding other than chunked",
        };
        f.write_str(what)
    }
}

impl std::error::Error for Strictness {}

/// Check a whole request head: the request line and the header lines through the empty
/// line that ends them (bytes after it are ignored). Empty lines before the request line
/// are skipped, as RFC 9112 §2.2 asks, but must end in CRLF too. A head without a whole
/// request line (also an empty one) is refused.
pub fn check_head(head: &[u8]) -> Result<(), Strictness> {
    let mut lines = Lines { rest: head };
    let request_line = loop {
        match lines.next() {
            Some(line) if line?.is_empty() => {}
            Some(line) => break line?,
            None => return Err(Strictness::BadRequestLine),
        }
    };
    check_request_line(request_line)?;
    let mut content_lengths = 0;
    let mut transfer_encodings = 0;
    for line in lines {
        let line = line?;
        if line.is_empty() {
            break;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            content_lengths += 1;
            if content_lengths > 1 || value.contains(&b',') {
                return Err(Strictness::DuplicateContentLength);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encodings += 1;
            if transfer_encodings > 1 || !is_plain_chunked(value) {
                return Err(Strictness::TransferEncodingNotChunked);
            }
        }
    }
    if content_lengths > 0 && transfer_encodings > 0 {
        return Err(Strictness::ContentLengthWithTransferEncoding);
    }
    Ok(())
}

/// `method SP request-target SP HTTP-version`, with exactly those two spaces, visible
/// ASCII otherwise, and an origin-form target.
fn check_request_line(line: &[u8]) -> Result<(), Strictness> {
    for &b in line {
        match b {
            b'\t' | b'\r' | 0x0B | 0x0C => return Err(Strictness::BadRequestLine),
            0..=0x1F | 0x7F..=0xFF => return Err(Strictness::ForbiddenByte),
            _ => {}
        }
    }
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Strictness::BadRequestLine);
    };
    if method.is_empty() || version.is_empty() || target.is_empty() {
        return Err(Strictness::BadRequestLine);
    }
    if target.first() != Some(&b'/') {
        return Err(Strictness::NotOriginForm);
    }
    Ok(())
}

/// The field value (everything after the colon) is `chunked` in any letter case, after at
/// most one space or tab, with nothing after it.
fn is_plain_chunked(value: &[u8]) -> bool {
    let value = match value.first() {
        Some(b' ' | b'\t') => &value[1..],
        _ => value,
    };
    value.eq_ignore_ascii_case(b"chunked")
}

/// The lines of a head without their CRLF; a line ending in LF alone is an error. The
/// last piece, without any line ending, is not a line and ends the iteration.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<&'a [u8], Strictness>;

    fn next(&mut self) -> Option<Self::Item> {
        let lf = memchr::memchr(b'\n', self.rest)?;
        let line = &self.rest[..lf];
        self.rest = &self.rest[lf + 1..];
        Some(match line.strip_suffix(b"\r") {
            Some(line) => Ok(line),
            None => Err(Strictness::BareLf),
        })
    }
}

/// Finds the end of a request head in bytes that arrive in pieces: the empty line after
/// at least one non-empty one, ended by LF with or without CR before it (the same rule
/// as pingora's parser, so a head with bare LFs is found whole and [`check_head`] can
/// refuse it).
#[derive(Debug, Default, Clone)]
pub struct HeadEnd {
    /// A byte other than CR or LF has been seen: empty lines from now on end the head.
    started: bool,
    /// Bytes other than CR in the current line.
    line_len: usize,
}

impl HeadEnd {
    pub fn new() -> HeadEnd {
        HeadEnd::default()
    }

    /// Feed the next bytes; returns the length of the part of `bytes` that belongs to the
    /// head when the head ends inside them.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        // Line by line (memchr finds the LFs): a head is a few lines of many bytes.
        let mut start = 0;
        for lf in memchr::memchr_iter(b'\n', bytes) {
            let content = has_content(&bytes[start..lf]);
            if !content && self.line_len == 0 && self.started {
                return Some(lf + 1);
            }
            self.started |= content;
            self.line_len = 0;
            start = lf + 1;
        }
        if has_content(&bytes[start..]) {
            self.started = true;
            self.line_len += 1;
        }
        None
    }
}

/// A byte other than CR: the line is not empty.
fn has_content(line: &[u8]) -> bool {
    line.iter().any(|&b| b != b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use Strictness::*;

    #[test]
    fn ordinary_heads_pass() {
        let heads: [&[u8]; 9] = [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: a\r\ntransfer-encoding:CHUNKED\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tChunked\r\n\r\n",
            // A comma in another field is no list of lengths.
            b"GET / HTTP/1.1\r\nHost: a\r\nAccept: a, b\r\nX-Content-Length: 1, 2\r\n\r\n",
            // Only the head counts: a body may hold anything.
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nGET /a b\n",
        ];
        for head in heads {
            assert_eq!(
                check_head(head),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn lenient_heads_are_refused() {
        let cases: [(&[u8], Strictness); 37] = [
            (b"GET /a b c HTTP/1.1\r\nHost: a\r\n\r\n", BadRequestLine),
            (b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", BadRequestLine),
            (b"GET /a?q=x y HTTP/1.1\r\n\r\n", BadRequestLine),
            (b"GET /a  HTTP/1.1\r\n\r\n", BadRequestLine),
            (b"GET  /a HTTP/1.1\r\n\r\n", BadRequestLine),
            (b"GET /a HTTP/1.1 \r\n\r\n", BadRequestLine),
            (b" GET /a HTTP/1.1\r\n\r\n", BadRequestLine),
            (b"GET /a\x0Bb HTTP/1.1\r\n\r\n", BadRequestLine),
            (b"GET /a\x0Cb HTTP/1.1\r\n\r\n", BadRequestLine),
            (b"GET /a\rb HTTP/1.1\r\n\r\n", BadRequestLine),
            (b"GET /a\x01b HTTP/1.1\r\n\r\n", ForbiddenByte),
            (b"GET /a\x7F HTTP/1.1\r\n\r\n", ForbiddenByte),
            (b"GET /\xC3\xA9 HTTP/1.1\r\n\r\n", ForbiddenByte),
            (b"GET /a\r\n\r\n", BadRequestLine),
            (b"GET\r\n\r\n", BadRequestLine),
            (b"", BadRequestLine),
            (b"\r\n", BadRequestLine),
            (b"GET / HTTP/1.1", BadRequestLine),
            (b"GET /a HTTP/1.1\nHost: a\n\n", BareLf),
            (b"GET /a HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", BareLf),
            (b"GET /a HTTP/1.1\r\nHost: a\r\n\n", BareLf),
            (b"\nGET /a HTTP/1.1\r\n\r\n", BareLf),
            (b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", NotOriginForm),
            (b"GET foo:bar HTTP/1.1\r\nHost: a\r\n\r\n", NotOriginForm),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", NotOriginForm),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", NotOriginForm),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
                DuplicateContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n",
                DuplicateContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
                DuplicateContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                ContentLengthWithTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                ContentLengthWithTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding:  chunked\r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                TransferEncodingNotChunked,
            ),
        ];
        for (head, want) in cases {
            assert_eq!(
                check_head(head),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn head_end_is_found_across_pieces() {
        let head = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut wire = head.to_vec();
        wire.extend_from_slice(b"body\r\n\r\n");
        for split in 0..=wire.len() {
            let mut end = HeadEnd::new();
            let got = match end.feed(&wire[..split]) {
                Some(n) => Some(n),
                None => end.feed(&wire[split..]).map(|n| n + split),
            };
            assert_eq!(got, Some(head.len()), "split at {split}");
        }
        let cases: [(&[u8], Option<usize>); 6] = [
            (b"GET / HTTP/1.1\n\n", Some(16)),
            (b"GET / HTTP/1.1\r\n\n", Some(17)),
            (b"GET / HTTP/1.1\nHost: a\r\n\r\nx", Some(26)),
            (b"\r\n\r\n\n", None),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", None),
            (b"", None),
        ];
        for (wire, want) in cases {
            assert_eq!(
                HeadEnd::new().feed(wire),
                want,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn reasons_are_distinct_snake_case() {
        let all = [
            BadRequestLine,
            ForbiddenByte,
            BareLf,
            NotOriginForm,
            DuplicateContentLength,
            ContentLengthWithTransferEncoding,
            TransferEncodingNotChunked,
        ];
        let mut reasons: Vec<_> = all.iter().map(|s| s.reason()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        for s in all {
            assert!(s
                .reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!s.to_string().is_empty());
            assert_eq!(s.status(), 400);
        }
        // The same reasons as the target normalisation's for the same refusals.
        assert_eq!(
            NotOriginForm.reason(),
            super::super::Malformed::NotOriginForm.reason()
        );
        assert_eq!(
            ForbiddenByte.reason(),
            super::super::Malformed::ForbiddenByte.reason()
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let alphabet = b"GET /a:\r\n \t,chunkedContent-LengthTransfer-Encoding";
        for _ in 0..20_000 {
            let len = (x % 64) as usize;
            let mut head = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                head.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = check_head(&head);
            if let Some(n) = HeadEnd::new().feed(&head) {
                assert!(n <= head.len());
            }
        }
    }
}
