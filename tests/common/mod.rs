//! Test harness: starts the real `partnergate` binary on ephemeral ports with the real
//! demo portal as its upstream, and helpers to talk to it and read what crossed the wire.
#![allow(dead_code)]

pub mod chromium;
pub mod front;
pub mod h2;
pub mod oidc;
pub mod raw;
pub mod sink;
pub mod smtp;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_partnergate");

/// A port nothing listens on right now, below the kernel's ephemeral range (32768+), so
/// the outgoing connections of parallel tests never take it before the gateway binds it.
/// Each test process walks the range from its own offset.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + offset.wrapping_add(n) % SPAN).expect("port range");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Development certificates, generated once per test run by `partnergate certs dev`.
pub fn dev_certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("partnergate-test-certs-{}", std::process::id()));
        let out = Command::new(BIN)
            .args(["certs", "dev", "--out"])
            .arg(&dir)
            .output()
            .expect("run certs dev");
        assert!(
            out.status.success(),
            "certs dev failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The demo portal, served in-process on an ephemeral port.
pub struct Portal {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Portal {
    pub async fn start() -> Portal {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind portal");
        let addr = listener.local_addr().expect("portal addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = partnergate::demo_portal::serve(listener, async move {
                let _ = rx.await;
            })
            .await;
        });
        Portal {
            addr,
            stop: Some(tx),
        }
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A running gateway process with its own config, log files and ports.
pub struct Gateway {
    pub child: Child,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub access_log: PathBuf,
    pub stderr_path: PathBuf,
}

/// Builds a gateway config: `[server]` is generated; the rest is given as TOML text.
pub struct GatewayBuilder {
    server_extra: String,
    body: String,
    tls: bool,
    import: Option<PathBuf>,
    localhost: bool,
}

impl GatewayBuilder {
    /// `body` holds `[upstreams.*]`, `[[routes]]` and any other section; `{portal}` is
    /// replaced by the caller beforehand.
    pub fn new(body: impl Into<String>) -> Self {
        GatewayBuilder {
            server_extra: String::new(),
            body: body.into(),
            tls: false,
            import: None,
            localhost: false,
        }
    }

    /// `public_url = "http://localhost:PORT"`: a secure context for a browser (WebAuthn
    /// needs one; `http://127.0.0.1` is not one to every browser).
    pub fn localhost(mut self) -> Self {
        self.localhost = true;
        self
    }

    /// Import a directory file (`partnergate directory import`) before starting.
    pub fn import(mut self, file: impl Into<PathBuf>) -> Self {
        self.import = Some(file.into());
        self
    }

    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Extra `key = value` lines for `[server]`.
    pub fn server(mut self, lines: &str) -> Self {
        self.server_extra.push_str(lines);
        self.server_extra.push('\n');
        self
    }

    /// Start the gateway; if another process took one of its ports in the meantime, try
    /// again on new ones.
    pub async fn start(self) -> Gateway {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_start().await {
                Ok(gw) => return gw,
                Err(stderr) if attempt < 3 && stderr.contains("Address already in use") => {}
                Err(stderr) => panic!("gateway exited early: {stderr}"),
            }
        }
    }

    async fn try_start(&self) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let http = free_addr();
        let admin = free_addr();
        let https = self.tls.then(free_addr);
        let access_log = dir.path().join("access.log");
        let mut server = format!(
            "[server]\nlisten = \"{http}\"\nadmin_listen = \"{admin}\"\nthreads = 2\nshutdown_grace = \"5s\"\n{}",
            self.server_extra
        );
        if !self.server_extra.contains("public_url") {
            let public = match https {
                Some(addr) => format!("https://localhost:{}", addr.port()),
                None if self.localhost => format!("http://localhost:{}", http.port()),
                None => format!("http://{http}"),
            };
            server.push_str(&format!("public_url = \"{public}\"\n"));
        }
        if let Some(addr) = https {
            let certs = dev_certs();
            server.push_str(&format!(
                "tls_listen = \"{addr}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                certs.join("server.crt").display(),
                certs.join("server.key").display()
            ));
        }
        let text = format!(
            "{server}\n{}\n[access_log]\npath = \"{}\"\n",
            self.body,
            access_log.display()
        );
        let config_path = dir.path().join("partnergate.toml");
        std::fs::write(&config_path, text).expect("write config");
        if let Some(file) = &self.import {
            let out = Command::new(BIN)
                .args(["directory", "import"])
                .arg(file)
                .arg("--config")
                .arg(&config_path)
                .output()
                .expect("run directory import");
            assert!(
                out.status.success(),
                "directory import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn gateway");
        let mut gw = Gateway {
            child,
            http,
            https,
            admin,
            dir,
            config_path,
            access_log,
            stderr_path,
        };
        gw.wait_ready().await?;
        Ok(gw)
    }
}

impl Gateway {
    /// `Err(stderr)` if the process exited before it was ready.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = client();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{status}: {}", self.stderr()));
            }
            let admin_up = client.get(self.admin_url("/healthz")).send().await.is_ok();
            let public_up = tokio::net::TcpStream::connect(self.http).await.is_ok();
            let tls_up = match self.https {
                Some(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
                None => true,
            };
            if admin_up && public_up && tls_up {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn tls_url(&self, path: &str) -> String {
        let addr = self.https.expect("tls listener");
        format!("https://localhost:{}{path}", addr.port())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait for the process to exit (at most `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Access log lines as JSON, waiting until at least `min` are written.
    pub async fn access_lines(&self, min: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| {
                    serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("bad access log line {l:?}: {e}"))
                })
                .collect();
            if lines.len() >= min || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first access log line matching `pred`, waiting up to 10 s for it.
    pub async fn access_line(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.access_lines(0).await;
            if let Some(line) = lines.into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(Instant::now() < deadline, "no matching access log line");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A TLS client trusting the dev CA, resolving localhost to 127.0.0.1.
pub fn tls_client() -> reqwest::Client {
    let ca = std::fs::read(dev_certs().join("ca.crt")).expect("ca.crt");
    let ca = reqwest::Certificate::from_pem(&ca).expect("ca pem");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(ca)
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("tls client")
}

/// Sum of a counter's samples whose labels include every `key="value"` pair given.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The standard body: one upstream named `portal` and a catch-all route.
pub fn portal_upstream(portal: SocketAddr) -> String {
    format!("[upstreams.portal]\naddrs = [\"{portal}\"]\n")
}

/// The shipped demo directory (orgs, users, grants; password [`DEMO_PASSWORD`]).
pub fn demo_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-directory.toml")
}

/// A configuration for the offline commands (`review`, `audit verify`, `directory …`):
/// one open route and an SQLite directory `directory.db` in `dir`, not created yet.
/// Returns (config path, database path).
pub fn offline_config(dir: &Path) -> (PathBuf, PathBuf) {
    let path = dir.join("partnergate.toml");
    let db = dir.join("directory.db");
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"

[upstreams.portal]
addrs = ["127.0.0.1:9"]

[[routes]]
name = "p"
path = "/"
upstream = "portal"
auth = "none"

[directory]
url = "sqlite://{}"
"#,
        db.display()
    );
    std::fs::write(&path, text).expect("write config");
    (path, db)
}

pub const DEMO_PASSWORD: &str = "partner-demo-2026";

/// A fresh PostgreSQL schema on 127.0.0.1:5432 (db `test`) for one test, as a
/// `directory.url`; dropped when the guard goes.
pub struct PgSchema {
    pub url: String,
    name: String,
}

pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432/test";

impl PgSchema {
    pub async fn new() -> PgSchema {
        use sqlx::Connection;
        let name = format!("e2e_{}_{:08x}", std::process::id(), rand::random::<u32>());
        let mut conn = sqlx::PgConnection::connect(PG_BASE)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test starts it)");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        PgSchema {
            url: format!("{PG_BASE}?options=-c%20search_path%3D{name}"),
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
            .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .output();
    }
}

/// A browser-like session with the gateway: cookies kept by hand so tests can read them.
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    pub fn new(base: impl Into<String>) -> Browser {
        Browser {
            base: base.into(),
            client: client(),
            cookies: Default::default(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().expect("ascii set-cookie");
            let pair = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = pair.split_once('=') {
                if val.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), val.to_string());
                }
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html,application/xhtml+xml")
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.keep(&resp);
        resp
    }

    /// POST a form as a browser would from a page of `origin`.
    pub async fn post_form(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: &str,
    ) -> reqwest::Response {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .header("cookie", self.cookie_header())
            .body(body)
            .send()
            .await
            .expect("POST");
        self.keep(&resp);
        resp
    }

    /// Open the login page and sign in; returns the POST's response.
    pub async fn login(&mut self, email: &str, password: &str, rd: &str) -> reqwest::Response {
        let page = self
            .get(&format!("/.partnergate/login?rd={}", urlencode(rd)))
            .await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("login page");
        let csrf = hidden_value(&html, "csrf").expect("csrf field");
        let origin = self.base.clone();
        self.post_form(
            "/.partnergate/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf", &csrf),
                ("rd", rd),
            ],
            &origin,
        )
        .await
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of `<input type="hidden" name="NAME" value="...">` in a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// A client WebSocket through the gateway.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a WebSocket at `url` (with an optional `Cookie` header) and have it echo `hello`
/// once (the demo portal's `/ws` echoes).
///
/// pingora 0.9.1 sometimes tears an upgraded connection down right after the 101, when
/// the upstream's 101 is read before the upgrade request's own (empty) body end
/// (cloudflare/pingora#946; more likely on a loaded machine). Such a connection never
/// carried a message: it is opened again, at most twice. A connection that echoed once
/// is established, so a later close is not that.
pub async fn open_ws(url: &str, cookie: Option<&str>, hello: &str) -> Ws {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = url.into_client_request().expect("ws url");
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().expect("cookie header"));
        }
        let (mut ws, resp) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket handshake");
        assert_eq!(resp.status(), 101);
        let sent = ws.send(Message::Text(hello.into())).await;
        let reply = match sent {
            Ok(()) => tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("echo in time"),
            Err(e) => Some(Err(e)),
        };
        match reply {
            Some(Ok(Message::Text(text))) if text.as_str() == hello => return ws,
            Some(Ok(other)) => panic!("unexpected first message {other:?}"),
            torn_down if attempt < 3 => {
                eprintln!("WebSocket closed right after the upgrade ({torn_down:?}); again");
            }
            other => panic!("WebSocket closed right after the upgrade, {attempt} times: {other:?}"),
        }
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
