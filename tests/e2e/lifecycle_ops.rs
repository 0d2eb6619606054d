//! Operations: graceful shutdown, reload and log reopening on a running gateway.

use std::time::{Duration, Instant};

use crate::common::{client, metric_sum, portal_upstream, GatewayBuilder, Portal};

fn route(name: &str, path: &str) -> String {
    format!("\n[[routes]]\nauth = \"none\"\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"portal\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits() {
    drains_in_flight_requests_on("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_in_flight_requests_then_exits() {
    drains_in_flight_requests_on("INT").await;
}

async fn drains_in_flight_requests_on(signal: &str) {
    let portal = Portal::start().await;
    let mut gw = GatewayBuilder::new(format!(
        "{}{}",
        portal_upstream(portal.addr),
        route("portal", "/")
    ))
    .start()
    .await;
    let url = gw.url("/debug/slow?ms=1500");
    let slow =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal(signal);
    let status = slow
        .await
        .expect("join")
        .expect("in-flight request completed");
    assert_eq!(status, 200);
    let exit = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(5)))
        .expect("gateway exited");
    assert!(exit.success(), "{exit:?}: {}", gw.stderr());
    let lines = gw.access_lines(1).await;
    assert!(
        lines
            .iter()
            .any(|l| l["path"] == "/debug/slow" && l["status"] == 200),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_routes_and_rejects_a_broken_config_whole() {
    let portal = Portal::start().await;
    let routes = format!(
        "{}{}",
        portal_upstream(portal.addr),
        route("echo", "/debug/echo/old")
    );
    let gw = GatewayBuilder::new(routes).start().await;
    assert_eq!(status(&gw.url("/debug/echo/old/x")).await, 200);
    assert_eq!(status(&gw.url("/debug/echo/new/x")).await, 404);

    let text = std::fs::read_to_string(&gw.config_path).expect("config");
    std::fs::write(
        &gw.config_path,
        text.replace("/debug/echo/old", "/debug/echo/new"),
    )
    .expect("rewrite");
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(&gw.url("/debug/echo/new/x")).await != 200 {
        assert!(Instant::now() < deadline, "SIGHUP reload did not apply");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&gw.url("/debug/echo/old/x")).await, 404);

    let good = std::fs::read_to_string(&gw.config_path).expect("config");
    let broken = good.replace("path = \"/debug/echo/new\"", "path = \"broken\"");
    std::fs::write(&gw.config_path, broken).expect("rewrite");
    let resp = client()
        .post(gw.admin_url("/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(resp.status(), 422);
    let body = resp.text().await.expect("body");
    assert!(body.contains("must start with '/'"), "{body}");
    assert_eq!(
        status(&gw.url("/debug/echo/new/x")).await,
        200,
        "old config must keep serving"
    );
    let metrics = gw.metrics().await;
    let reloads = |result| {
        metric_sum(
            &metrics,
            "partnergate_config_reloads_total",
            &[("result", result)],
        )
    };
    assert_eq!(reloads("success"), 1.0);
    assert_eq!(reloads("error"), 1.0);
}

async fn status(url: &str) -> u16 {
    client()
        .get(url)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_access_log() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(format!(
        "{}{}",
        portal_upstream(portal.addr),
        route("portal", "/")
    ))
    .start()
    .await;
    client().get(gw.url("/first")).send().await.expect("send");
    assert_eq!(gw.access_lines(1).await.len(), 1);
    let rotated = gw.access_log.with_extension("log.1");
    std::fs::rename(&gw.access_log, &rotated).expect("rotate");
    gw.signal("USR1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    client().get(gw.url("/second")).send().await.expect("send");
    let lines = gw.access_lines(1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["path"], "/second");
    let old = std::fs::read_to_string(&rotated).expect("rotated");
    assert!(old.contains("/first") && !old.contains("/second"));
}
