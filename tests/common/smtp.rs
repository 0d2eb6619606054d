//! A real SMTP server on 127.0.0.1 for the mail tests: Python's aiosmtpd (from PyPI,
//! installed by `scripts/test` into `target/test-venv`) running `tests/smtp_sink.py`,
//! which writes every accepted message to a directory as JSON. It can be stopped and
//! started again on the same port, to test that the outbox holds mail while it is down.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python3");
    assert!(
        venv.exists(),
        "{} is missing: ./scripts/test installs aiosmtpd there (python3 -m venv target/test-venv && target/test-venv/bin/pip install aiosmtpd==1.4.6)",
        venv.display()
    );
    venv
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let mut sink = SmtpSink {
            port: super::free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        sink.resume().await;
        sink
    }

    /// `smtp_url` for `[mail]`: plain SMTP on the loopback.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Start the server (again) on its port.
    pub async fn resume(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let child = Command::new(python())
            .arg(script)
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP sink");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "SMTP sink did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop the server; connections to its port are refused until [`SmtpSink::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("sink dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("a message file");
                serde_json::from_str(&text).expect("a message as JSON")
            })
            .collect()
    }

    /// Wait until at least `n` messages arrived (at most `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} message(s) arrived, wanted {n}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
