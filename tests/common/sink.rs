//! An upstream that records every byte the gateway sends it, to prove that a refused
//! request never reached the upstream. Each connection gets `200 ok` once its request head
//! is complete, and is then closed, so each connection carries one request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Sink {
    pub addr: SocketAddr,
    /// The bytes received, one entry per connection.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sink {
    /// Listen on an ephemeral port; the accept loop runs on its own thread until the test
    /// process ends.
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = log.clone();
                let index = {
                    let mut log = log.lock().expect("sink log");
                    log.push(Vec::new());
                    log.len() - 1
                };
                std::thread::spawn(move || serve(conn, &log, index));
            }
        });
        Sink { addr, received }
    }

    /// Everything received so far, one entry per connection (health checks open some
    /// without sending anything).
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().expect("sink log").clone()
    }

    /// The first line of each connection that sent anything, in the order the
    /// connections were opened.
    pub fn request_lines(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|bytes| !bytes.is_empty())
            .map(|bytes| {
                let text = String::from_utf8_lossy(bytes);
                text.split("\r\n").next().unwrap_or_default().to_string()
            })
            .collect()
    }
}

fn serve(mut conn: TcpStream, log: &Mutex<Vec<Vec<u8>>>, index: usize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        log.lock().expect("sink log")[index].extend_from_slice(&buf[..n]);
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let _ = conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
    );
}
