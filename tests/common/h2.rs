//! A hand-written HTTP/2 client over TLS (ALPN h2): it sends frames exactly as built, so
//! tests can send what a real client library refuses to (uppercase names, pseudo-headers
//! out of order, endless CONTINUATION). Header blocks use HPACK literals without indexing
//! and without Huffman coding, which need no encoder state. Blocking I/O: run it on a
//! blocking thread (`tokio::task::spawn_blocking`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// How the gateway answered one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// RST_STREAM on the stream, with its error code.
    Reset(u32),
    /// GOAWAY on the connection, with its error code.
    GoAway(u32),
    /// The connection ended without either.
    Closed,
}

impl Outcome {
    /// A refusal: a 4xx, a reset stream or the connection given up.
    pub fn is_refusal(self) -> bool {
        match self {
            Outcome::Status(s) => (400..500).contains(&s),
            Outcome::Reset(_) | Outcome::GoAway(_) | Outcome::Closed => true,
        }
    }
}

pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub struct H2 {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    /// The client preface went out: from then on SETTINGS and PING get their ACK (before
    /// it, an ACK would itself break the preface).
    started: bool,
}

impl H2 {
    /// TLS to `addr` as `localhost` (trusting the dev CA), ALPN h2, then the client
    /// preface and an empty SETTINGS frame.
    pub fn connect(addr: SocketAddr) -> H2 {
        let mut h2 = H2::tls(addr);
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend(frame(SETTINGS, 0, 0, &[]));
        h2.write(&wire).expect("preface");
        h2.started = true;
        h2
    }

    /// Only the TLS handshake (ALPN h2): nothing of HTTP/2 is sent yet.
    pub fn tls(addr: SocketAddr) -> H2 {
        let ca = std::fs::read(super::dev_certs().join("ca.crt")).expect("ca.crt");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(cert.expect("ca pem")).expect("add ca");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("tls client");
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        sock.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("tls handshake");
        }
        assert_eq!(
            tls.conn.alpn_protocol(),
            Some(&b"h2"[..]),
            "the gateway did not select h2"
        );
        H2 {
            tls,
            started: false,
        }
    }

    /// Write bytes (several frames at once when given several).
    pub fn write(&mut self, wire: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(wire)?;
        self.tls.flush()
    }

    /// A HEADERS frame with END_HEADERS (and END_STREAM when asked) for `fields`.
    pub fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        let _ = self.write(&frame(HEADERS, flags, stream, &block(fields)));
    }

    /// The next frame; `Err` at the end of the connection or after 10 s of silence.
    /// SETTINGS and PING are acknowledged on the way, once the preface is out.
    pub fn read_frame(&mut self) -> Result<Frame, End> {
        let mut head = [0u8; 9];
        self.tls.read_exact(&mut head).map_err(End::of)?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        self.tls.read_exact(&mut payload).map_err(End::of)?;
        let f = Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7FFF_FFFF,
            payload,
        };
        if self.started && f.kind == SETTINGS && f.flags & ACK == 0 {
            let _ = self.write(&frame(SETTINGS, ACK, 0, &[]));
        }
        if self.started && f.kind == PING && f.flags & ACK == 0 {
            let _ = self.write(&frame(PING, ACK, 0, &f.payload));
        }
        Ok(f)
    }

    /// Read until the gateway answers `stream` (response HEADERS or RST_STREAM) or gives
    /// up the connection.
    pub fn outcome(&mut self, stream: u32) -> Outcome {
        loop {
            let f = match self.read_frame() {
                Ok(f) => f,
                Err(End::Closed) => return Outcome::Closed,
                Err(End::Silent) => panic!("no answer for stream {stream} in 10 s"),
            };
            match f.kind {
                HEADERS if f.stream == stream => {
                    return Outcome::Status(status_of(&f.payload).expect("decodable :status"))
                }
                RST_STREAM if f.stream == stream => return Outcome::Reset(code(&f.payload, 0)),
                GOAWAY => return Outcome::GoAway(code(&f.payload, 4)),
                _ => {}
            }
        }
    }

    /// Whether the gateway ends the connection (GOAWAY, or the socket closes) before it
    /// falls silent for 10 s; frames for streams are skipped.
    pub fn connection_ends(&mut self) -> bool {
        loop {
            match self.read_frame() {
                Ok(f) if f.kind == GOAWAY => return true,
                Ok(_) => {}
                Err(End::Closed) => return true,
                Err(End::Silent) => return false,
            }
        }
    }
}

/// Why no frame could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The connection was closed (or reset).
    Closed,
    /// Nothing arrived for the read timeout.
    Silent,
}

impl End {
    fn of(e: std::io::Error) -> End {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => End::Silent,
            _ => End::Closed,
        }
    }
}

fn code(payload: &[u8], at: usize) -> u32 {
    payload
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// One frame on the wire.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame length");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7FFF_FFFF).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK header block: each field as a literal without indexing, new name, no Huffman.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        string(&mut out, name.as_bytes());
        string(&mut out, value.as_bytes());
    }
    out
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    // Length as an HPACK integer with a 7-bit prefix (H = 0: not Huffman).
    let mut len = s.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push((len % 128) as u8 | 0x80);
            len /= 128;
        }
        out.push(len as u8);
    }
    out.extend_from_slice(s);
}

/// The usual pseudo-headers of a GET.
pub fn get_fields<'a>(authority: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
    ]
}

/// The `:status` of a response header block, which servers send first: an indexed field
/// of the static table, or a literal with the `:status` name whose value may be Huffman
/// coded (only digits are decoded).
fn status_of(block: &[u8]) -> Option<u16> {
    let mut i = 0;
    // Dynamic table size updates may come first.
    while block.get(i)? & 0xE0 == 0x20 {
        i += 1;
        while block.get(i)? & 0x80 != 0 {
            i += 1;
        }
        i += 1;
    }
    let first = *block.get(i)?;
    if first & 0x80 != 0 {
        return match first & 0x7F {
            8 => Some(200),
            9 => Some(204),
            10 => Some(206),
            11 => Some(304),
            12 => Some(400),
            13 => Some(404),
            14 => Some(500),
            _ => None,
        };
    }
    // Literal with indexed name 8..=14 (`:status`): 01xxxxxx or 000Nxxxx.
    let index = if first & 0x40 != 0 {
        first & 0x3F
    } else {
        first & 0x0F
    };
    if !(8..=14).contains(&index) {
        return None;
    }
    let len_byte = *block.get(i + 1)?;
    let len = usize::from(len_byte & 0x7F);
    let value = block.get(i + 2..i + 2 + len)?;
    let digits = if len_byte & 0x80 != 0 {
        huffman_digits(value)?
    } else {
        String::from_utf8(value.to_vec()).ok()?
    };
    digits.parse().ok()
}

/// Decode a Huffman-coded string of ASCII digits (RFC 7541 Appendix B: '0'-'2' are the
/// 5-bit codes 0-2, '3'-'9' the 6-bit codes 0x19-0x1f); padding is all ones.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |k| (b >> k) & 1))
        .collect();
    let take = |at: usize, n: usize| -> Option<u8> {
        bits.get(at..at + n)
            .map(|s| s.iter().fold(0u8, |acc, &b| acc << 1 | b))
    };
    let mut out = String::new();
    let mut at = 0;
    while at < bits.len() {
        if bits[at..].iter().all(|&b| b == 1) && bits.len() - at < 8 {
            break;
        }
        match (take(at, 5), take(at, 6)) {
            (Some(v @ 0..=2), _) => {
                out.push(char::from(b'0' + v));
                at += 5;
            }
            (_, Some(v @ 0x19..=0x1F)) => {
                out.push(char::from(b'0' + 3 + (v - 0x19)));
                at += 6;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn huffman_digits() {
        // "431": 011010 011001 00001 + 7 bits of padding.
        assert_eq!(
            super::huffman_digits(&[0b0110_1001, 0b1001_0000, 0b1111_1111]).as_deref(),
            Some("431")
        );
    }
}
