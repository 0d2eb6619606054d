//! Bench-only baseline: a plain pingora reverse proxy with no partnergate stages.
//! `scripts/bench` compares partnergate's requests/s against this.
//!
//! usage: passthrough LISTEN_ADDR UPSTREAM_ADDR THREADS

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

// The same allocator as the partnergate binary, so the comparison is of the stages only.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Passthrough {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream), Some(threads)) = (args.get(1), args.get(2), args.get(3))
    else {
        eprintln!("usage: passthrough LISTEN_ADDR UPSTREAM_ADDR THREADS");
        std::process::exit(2);
    };
    let (Ok(upstream), Ok(threads)) = (upstream.parse(), threads.parse()) else {
        eprintln!("bad UPSTREAM_ADDR or THREADS");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        work_stealing: true,
        upstream_keepalive_pool_size: 1024,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service =
        pingora::proxy::http_proxy_service(&server.configuration, Passthrough { upstream });
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever();
}
