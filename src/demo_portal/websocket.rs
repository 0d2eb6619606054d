//! `GET /ws`: a WebSocket echo, for tests of upgrades through the gateway.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;

pub(super) async fn upgrade(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(echo_messages)
}

async fn echo_messages(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => message,
            // The WebSocket layer answers pings and the peer's close frame by itself; the
            // next `recv` flushes that answer and then ends the stream.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
