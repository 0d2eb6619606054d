//! End-to-end tests of the demo portal over real sockets.

use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// A portal on an ephemeral port; dropping it shuts the server down.
struct Portal {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

impl Portal {
    async fn start() -> Portal {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(super::serve(listener, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Portal {
            addr,
            client,
            _shutdown: shutdown,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    async fn get_text(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    async fn echo(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }
}

#[tokio::test]
async fn dashboard_shows_identity_headers_escaped() {
    let portal = Portal::start().await;
    let identity = [
        ("X-Partner-User", "<script>alert(1)</script>"),
        ("X-Partner-User-Id", "u-42"),
        ("X-Partner-Org", "acme"),
        ("X-Partner-Org-Type", "reseller"),
        ("X-Partner-Roles", "partner-admin,partner-user"),
        ("X-Partner-Assertion", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
        ("X-Request-Id", "req-1"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "partners.example.com"),
    ];
    for path in ["/", "/dashboard"] {
        let (status, html) = portal.get_text(path, &identity).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains("Demo partner portal"), "{path}");
        assert!(html.contains("<h1>Partner admin dashboard</h1>"), "{path}");
        assert!(html.contains("data-dashboard=\"partner-admin\""), "{path}");
        assert!(html.contains("assertion not checked"), "{path}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"), "unescaped user value in {html}");
        for value in [
            "u-42",
            "acme",
            "reseller",
            "partner-admin,partner-user",
            "req-1",
        ] {
            assert!(html.contains(value), "{value} missing from {path}");
        }
        for value in ["203.0.113.7", "https", "partners.example.com"] {
            assert!(html.contains(value), "{value} missing from {path}");
        }
        assert!(html.contains("present"), "assertion presence");
        assert!(
            !html.contains("eyJhbGciOiJFUzI1NiJ9"),
            "assertion value shown"
        );
        assert!(!html.contains("anonymous (no X-Partner-User)"));
    }
}

#[tokio::test]
async fn each_role_lands_on_its_own_dashboard() {
    let portal = Portal::start().await;
    let cases = [
        ("owner-admin", "Partner programme console", "owner-admin"),
        ("partner-admin", "Partner admin dashboard", "partner-admin"),
        ("partner-user", "Partner dashboard", "partner-user"),
        ("referral-partner", "Referral dashboard", "referral-partner"),
        (
            "partner-user,owner-admin",
            "Partner programme console",
            "owner-admin",
        ),
        ("auditor", "Partner portal", "generic"),
        ("", "Partner portal", "generic"),
    ];
    for (roles, heading, dashboard) in cases {
        let headers = [
            ("X-Partner-User", "someone@acme.example"),
            ("X-Partner-Org", "acme"),
            ("X-Partner-Roles", roles),
        ];
        let (status, html) = portal.get_text("/dashboard", &headers).await;
        assert_eq!(status, StatusCode::OK, "{roles}");
        assert!(
            html.contains(&format!("<h1>{heading}</h1>")),
            "{roles}: {html}"
        );
        let marker = format!("data-dashboard=\"{dashboard}\"");
        assert_eq!(html.matches("data-dashboard=").count(), 1, "{roles}");
        assert!(html.contains(&marker), "{roles}: {html}");
    }
}

#[tokio::test]
async fn role_content_is_escaped() {
    let portal = Portal::start().await;
    let headers = [
        ("X-Partner-User", "carol@brightpath.example"),
        ("X-Partner-Org", "<img src=x>"),
        ("X-Partner-Roles", "referral-partner,<i>x</i>"),
    ];
    let (status, html) = portal.get_text("/dashboard", &headers).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Referral dashboard"));
    assert!(html.contains("/r/&lt;img src=x&gt;"), "{html}");
    assert!(html.contains("&lt;i&gt;x&lt;/i&gt;"), "{html}");
    assert!(!html.contains("<img") && !html.contains("<i>"), "{html}");
}

#[tokio::test]
async fn dashboard_without_identity_says_it_bypassed_the_gateway() {
    let portal = Portal::start().await;
    let (status, html) = portal.get_text("/dashboard", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Not signed in through the gateway</h1>"));
    assert!(html.contains("did not come through the gateway"));
    assert!(html.contains("data-dashboard=\"none\""));
    assert!(html.contains("anonymous (no X-Partner-User)"));
    assert!(html.contains("absent"));
}

#[tokio::test]
async fn debug_headers_reports_what_arrived() {
    let portal = Portal::start().await;
    let request = portal
        .client
        .post(portal.url("/debug/headers?b=2&a=%2F"))
        .header("X-Partner-User", "alice@acme.example")
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .body("hello");
    let report = portal.echo(request).await;
    assert_eq!(report["method"], "POST");
    assert_eq!(report["path"], "/debug/headers");
    assert_eq!(report["query"], "b=2&a=%2F");
    assert_eq!(report["body_bytes"], 5);
    assert_eq!(report["headers"]["x-partner-user"], "alice@acme.example");
    assert_eq!(report["headers"]["x-multi"], "one, two");
    assert_eq!(report["headers"]["content-length"], "5");
    let keys: Vec<&String> = report
        .as_object()
        .map(|object| object.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 6, "unexpected fields in {report}");
    assert_eq!(report["assertion"]["verified"], false);
    assert_eq!(report["assertion"]["claims"], Value::Null);
    let error = report["assertion"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("without --jwks-url"), "{error}");
}

#[tokio::test]
async fn debug_echo_reports_the_raw_path_for_any_method() {
    let portal = Portal::start().await;
    let cases = [
        (reqwest::Method::GET, "/debug/echo/a%2Fb", None),
        (reqwest::Method::PUT, "/debug/echo/x%7e/y", Some("q=%20")),
        (reqwest::Method::DELETE, "/debug/echo/", None),
        (reqwest::Method::PATCH, "/debug/echo/deep/er/path", Some("")),
    ];
    for (method, path, query) in cases {
        let target = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let report = portal
            .echo(portal.client.request(method.clone(), portal.url(&target)))
            .await;
        assert_eq!(report["method"], method.as_str(), "{target}");
        assert_eq!(report["path"], path, "{target}");
        assert_eq!(report["query"], json!(query), "{target}");
        assert_eq!(report["body_bytes"], 0, "{target}");
    }
}

/// reqwest resolves dot segments itself, so un-normalised targets go over a raw socket.
#[tokio::test]
async fn debug_echo_reports_unnormalised_targets_verbatim() {
    let portal = Portal::start().await;
    for target in [
        "/debug/echo/x/%2e%2e/y",
        "/debug/echo/a/../b//c",
        "/debug/echo/%00%5C",
    ] {
        let mut stream = TcpStream::connect(portal.addr).await.expect("connect");
        let request =
            format!("GET {target}?raw=%2e HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{target}: {response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let report: Value = serde_json::from_str(body).expect("json body");
        assert_eq!(report["path"], target);
        assert_eq!(report["query"], "raw=%2e");
        assert_eq!(report["headers"]["host"], "portal");
    }
}

#[tokio::test]
async fn non_utf8_header_values_are_shown_lossily() {
    let portal = Portal::start().await;
    let odd = HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is a valid header value");
    let request = portal
        .client
        .get(portal.url("/debug/headers"))
        .header("X-Partner-User", odd.clone());
    let report = portal.echo(request).await;
    assert_eq!(report["headers"]["x-partner-user"], "caf\u{fffd}");

    let response = portal
        .client
        .get(portal.url("/dashboard"))
        .header("X-Partner-User", odd)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.expect("body").contains("caf\u{fffd}"));
}

#[tokio::test]
async fn slow_answers_after_sleeping() {
    let portal = Portal::start().await;
    assert_eq!(
        portal.get_text("/debug/slow?ms=20", &[]).await,
        (StatusCode::OK, "slow done".to_owned())
    );
    let (status, _) = portal.get_text("/debug/slow?ms=soon", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn healthz_is_ok() {
    let portal = Portal::start().await;
    assert_eq!(
        portal.get_text("/healthz", &[]).await,
        (StatusCode::OK, "ok".to_owned())
    );
}

#[tokio::test]
async fn client_page_shows_account_and_escaped_values() {
    let portal = Portal::start().await;
    let headers = [
        ("X-Partner-User", "bob@acme.example"),
        ("X-Partner-Account", "client-42"),
        ("X-Partner-Account-Permission", "<b>admin</b>"),
    ];
    let cases = [
        "/clients/client-42",
        "/clients/client-42/",
        "/clients/client-42/reports/q3",
    ];
    for path in cases {
        let (status, html) = portal.get_text(path, &headers).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains("Client account client-42"), "{path}");
        assert!(html.contains(&format!("<code>{path}</code>")), "{path}");
        assert!(html.contains("&lt;b&gt;admin&lt;/b&gt;"), "{path}");
        assert!(!html.contains("<b>"), "{path}");
        assert!(html.contains("bob@acme.example"), "{path}");
    }

    let (status, html) = portal.get_text("/clients/%3Ci%3E", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Client account &lt;i&gt;"));
    assert!(html.contains("anonymous (no X-Partner-User)"));

    let (status, _) = portal.get_text("/clients/%FF", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "undecodable account id");
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let portal = Portal::start().await;
    for path in ["/nope", "/debug/echo", "/clients", "/dashboard/x"] {
        let (status, body) = portal.get_text(path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, "not found\n", "{path}");
    }
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_and_answers_close() {
    let portal = Portal::start().await;
    let (mut socket, response) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws", portal.addr))
            .await
            .expect("websocket handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    socket
        .send(Message::text("hello"))
        .await
        .expect("send text");
    let reply = socket.next().await.expect("reply").expect("frame");
    assert_eq!(reply, Message::text("hello"));

    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send binary");
    let reply = socket.next().await.expect("reply").expect("frame");
    assert_eq!(reply, Message::binary(vec![0u8, 1, 2, 255]));

    socket.close(None).await.expect("send close");
    let reply = socket.next().await.expect("close reply").expect("frame");
    assert!(matches!(reply, Message::Close(_)), "{reply:?}");
    assert!(socket.next().await.is_none(), "stream ends after close");
}

#[tokio::test]
async fn websocket_path_without_upgrade_is_rejected() {
    let portal = Portal::start().await;
    let (status, _) = portal.get_text("/ws", &[]).await;
    assert!(status.is_client_error(), "{status}");
}

mod signed;
