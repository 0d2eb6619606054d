//! A real Chromium, headless, driven over the Chrome DevTools Protocol (CDP) on its
//! websocket: enough to sign in through the gateway's own forms and use the web console as
//! a person would. Each [`Tab`] lives in its own browser context (its own cookies), so two
//! tabs are two people. Uncaught script errors and console errors (a CSP violation among
//! them) are collected; tests assert there were none.
//!
//! There is no skipping: without Chromium at [`CHROMIUM`] the tests that use it fail and
//! say how to install it (`scripts/test` does).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long a command, a navigation or a [`Chromium::wait_for`] may take.
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Chromium {
    child: Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Script exceptions and console errors seen so far, as text.
    problems: Vec<String>,
    _profile: TempDir,
}

/// A page in its own browser context.
pub struct Tab {
    session: String,
}

impl Chromium {
    /// Start Chromium with a fresh profile and connect to its DevTools websocket.
    pub async fn launch() -> Chromium {
        assert!(
            Path::new(CHROMIUM).exists(),
            "Chromium is not installed at {CHROMIUM}: the console's browser tests need it \
             (`apt-get install chromium`; scripts/test installs it)"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--password-store=basic",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so Drop can end Chromium and every helper it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let url = devtools_url(&mut child);
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to Chromium's DevTools at {url}: {e}"));
        Chromium {
            child,
            ws,
            next_id: 0,
            problems: Vec::new(),
            _profile: profile,
        }
    }

    /// Send one CDP command (to a page's session, or to the browser) and return its result.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_call(session, method, params)
            .await
            .unwrap_or_else(|e| panic!("CDP {method} failed: {e}"))
    }

    /// [`Self::call`], with the protocol's error (a page navigating away mid-evaluation)
    /// as `Err`.
    async fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("CDP {method}: {e}"));
        loop {
            let frame = match tokio::time::timeout(PATIENCE, self.ws.next()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(e))) => panic!("CDP {method}: {e}"),
                Ok(None) => panic!("CDP {method}: Chromium closed the connection"),
                Err(_) => panic!("CDP {method}: no answer within {PATIENCE:?}"),
            };
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).expect("CDP message is JSON");
            if reply["id"] == id {
                return match reply.get("error") {
                    Some(error) => Err(error.to_string()),
                    None => Ok(reply["result"].clone()),
                };
            }
            self.note_event(&reply);
        }
    }

    fn note_event(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("exception");
                self.problems.push(format!("uncaught: {text}"));
            }
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                self.problems
                    .push(format!("console.error: {}", params["args"]));
            }
            // Failed loads (the API's 403s the tests provoke, a missing favicon) are
            // "network" entries; anything else at error level (a CSP violation) counts.
            Some("Log.entryAdded")
                if params["entry"]["level"] == "error"
                    && params["entry"]["source"] != "network" =>
            {
                let entry = &params["entry"];
                self.problems
                    .push(format!("{}: {}", entry["source"], entry["text"]));
            }
            _ => {}
        }
    }

    /// Script errors and console errors seen so far.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// A new tab in a new browser context: its own cookies, so a separate person.
    pub async fn new_tab(&mut self) -> Tab {
        let context = self
            .call(None, "Target.createBrowserContext", json!({}))
            .await["browserContextId"]
            .clone();
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": context }),
            )
            .await["targetId"]
            .clone();
        let session = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(Some(&session), domain, json!({})).await;
        }
        let screen =
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false });
        self.call(Some(&session), "Emulation.setDeviceMetricsOverride", screen)
            .await;
        Tab { session }
    }

    /// Give the tab a virtual platform authenticator (CTAP2, resident keys, user
    /// verification that always succeeds): what a passkey ceremony talks to.
    pub async fn virtual_authenticator(&mut self, tab: &Tab) {
        self.call(Some(&tab.session), "WebAuthn.enable", json!({}))
            .await;
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "automaticPresenceSimulation": true,
        });
        self.call(
            Some(&tab.session),
            "WebAuthn.addVirtualAuthenticator",
            json!({ "options": options }),
        )
        .await;
    }

    /// Start loading `url` in the tab (wait for what should appear with [`Self::wait_for`]).
    pub async fn navigate(&mut self, tab: &Tab, url: &str) {
        let result = self
            .call(Some(&tab.session), "Page.navigate", json!({ "url": url }))
            .await;
        if let Some(error) = result["errorText"].as_str() {
            panic!("navigating to {url}: {error}");
        }
    }

    /// Evaluate a JavaScript expression in the page (awaiting a promise); its value, or the
    /// exception it threw.
    pub async fn eval(&mut self, tab: &Tab, expression: &str) -> Result<Value, String> {
        let params = json!({
            "expression": expression,
            "awaitPromise": true,
            "returnByValue": true,
        });
        let result = self
            .try_call(Some(&tab.session), "Runtime.evaluate", params)
            .await?;
        if let Some(details) = result.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("exception");
            return Err(text.to_string());
        }
        Ok(result["result"]["value"].clone())
    }

    /// [`Self::eval`] that must succeed.
    pub async fn run(&mut self, tab: &Tab, expression: &str) -> Value {
        self.eval(tab, expression)
            .await
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// Evaluate `expression` until it is truthy (a page still loading, or a console view
    /// still fetching, is "not yet"); its value. Panics with what the page shows after
    /// [`PATIENCE`].
    pub async fn wait_for(&mut self, tab: &Tab, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        let mut last: String;
        loop {
            match self.eval(tab, expression).await {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => last = value.to_string(),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                let page = self
                    .eval(
                        tab,
                        "location.href + '\\n' + (document.body ? document.body.innerText : '')",
                    )
                    .await
                    .unwrap_or_default();
                panic!(
                    "timed out waiting for {what} ({expression}); last: {last}\npage: {page}\nproblems: {:?}",
                    self.problems
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Chromium {
    /// Sign in on the login page the tab is on (or about to show): the email step, then
    /// the password step. Returns once the password form was sent.
    pub async fn password_sign_in(&mut self, tab: &Tab, email: &str, password: &str) {
        self.email_step(tab, email).await;
        self.wait_for(
            tab,
            "the password step",
            "location.pathname === '/.partnergate/login' && document.readyState === 'complete' && !!document.querySelector('#password')",
        )
        .await;
        let fill = format!(
            "document.querySelector('#email').value = {}; document.querySelector('#password').value = {}; true",
            json!(email),
            json!(password)
        );
        self.run(tab, &fill).await;
        // The page navigates away while this returns: its answer may be lost.
        let _ = self
            .eval(tab, "document.querySelector('form').requestSubmit(); true")
            .await;
    }

    /// The login page's first step: type the email and continue (to the password step, or
    /// to the org's identity provider).
    pub async fn email_step(&mut self, tab: &Tab, email: &str) {
        self.wait_for(
            tab,
            "the login page's email step",
            "location.pathname === '/.partnergate/login' && document.readyState === 'complete' && !!document.querySelector('#continue')",
        )
        .await;
        let fill = format!(
            "document.querySelector('#email').value = {}; true",
            json!(email)
        );
        self.run(tab, &fill).await;
        let _ = self
            .eval(tab, "document.querySelector('form').requestSubmit(); true")
            .await;
    }

    /// Save a PNG of the whole page (for looking at what a test saw).
    pub async fn screenshot(&mut self, tab: &Tab, path: &Path) {
        use base64::Engine;
        let params = json!({ "format": "png", "captureBeyondViewport": true });
        let shot = self
            .call(Some(&tab.session), "Page.captureScreenshot", params)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group we made at launch: Chromium and its renderer and helper processes.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ws://` URL Chromium prints on stderr once DevTools listens. A thread keeps reading
/// stderr afterwards, so Chromium never blocks on a full pipe.
fn devtools_url(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Ok(url.trim().to_string()));
                }
            } else if tx.is_some() {
                seen.push(line);
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(url)) => url,
        Ok(Err(stderr)) => panic!("Chromium exited without DevTools: {stderr}"),
        Err(_) => panic!("Chromium did not print its DevTools URL within 30 s"),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
