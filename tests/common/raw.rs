//! A raw HTTP/1.1 client: sends bytes exactly as written (reqwest would clean up the
//! hostile paths these tests need) and parses the response.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send `head` (request line and headers, without the final blank line) and read the
/// response; the connection is closed after one request.
pub async fn request(addr: SocketAddr, head: &str) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = head.trim_end().replace('\n', "\r\n");
    let has_connection = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("connection:"));
    let close = if has_connection {
        ""
    } else {
        "\r\nConnection: close"
    };
    let wire = format!("{head}{close}\r\n\r\n");
    stream.write_all(wire.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "raw request timed out");
    parse(&buf)
}

pub async fn get(addr: SocketAddr, target: &str) -> RawResponse {
    request(addr, &format!("GET {target} HTTP/1.1\nHost: localhost")).await
}

fn parse(buf: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Send `wire` exactly as given (no line-ending fix-up, no added headers) on a new
/// connection and read one response. `None`: the gateway closed the connection without
/// answering.
pub async fn send(addr: SocketAddr, wire: &[u8]) -> Option<RawResponse> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    send_on(&mut stream, wire).await
}

/// As [`send`], on an open connection (to send several requests on one).
pub async fn send_on(stream: &mut tokio::net::TcpStream, wire: &[u8]) -> Option<RawResponse> {
    // The gateway may answer and close before it has read everything (a refused head);
    // what it answered is what counts.
    let _ = stream.write_all(wire).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 4096];
        while !is_complete(&buf) {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "raw request timed out");
    (!buf.is_empty()).then(|| parse(&buf))
}

/// Whether `buf` holds a whole response (the connection may stay open after it).
fn is_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}
