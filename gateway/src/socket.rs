//! One GraphQL WebSocket, driven here rather than by async-graphql-axum's
//! `serve`, for the close codes of graphql-transport-ws that it does not
//! give: a refused `connection_init` closes with 4403 (it sends 1002), a
//! socket that sends no `connection_init` in time closes with 4408, and a
//! socket whose token expires closes with 4403 just after its subscriptions
//! ended with `UNAUTHENTICATED` (async-graphql does the protocol itself).
//! A socket is pinged every `ping_every`; one that sends nothing, not even
//! a pong, for two intervals (or does not read what it is sent) is a peer
//! gone away, and is closed.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_graphql::http::{WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};

use crate::{
    ChorusSchema, ConnectionId,
    auth::{Auth, Expiry},
    init_token,
    limits::ClientIp,
};

/// Connections opened so far, to number them.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// A refused `connection_init`, or a token that expired (graphql-transport-ws).
const FORBIDDEN: u16 = 4403;
/// No `connection_init` in time (graphql-transport-ws).
const INIT_TIMEOUT: u16 = 4408;
/// The peer stopped answering (RFC 6455's "going away").
const GOING_AWAY: u16 = 1001;
/// After a token's expiry, how long the subscriptions' `UNAUTHENTICATED`
/// errors have to leave before the socket closes.
const FLUSH_BEFORE_CLOSE: Duration = Duration::from_millis(200);

/// A socket's timings (`CHORUS_WS_INIT_TIMEOUT`, `CHORUS_WS_PING_INTERVAL`).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub init_within: Duration,
    pub ping_every: Duration,
}

/// Serves `socket` with `protocol` until either side ends it.
pub async fn serve(socket: WebSocket, schema: ChorusSchema, protocol: WebSocketProtocols, auth: Auth, timing: Timing, ip: Option<ClientIp>) {
    let (mut sink, source) = socket.split();
    let initialized = Arc::new(AtomicBool::new(false));
    let expiry: Arc<Mutex<Option<Expiry>>> = Arc::default();
    // Pings sent since the peer last sent anything.
    let unanswered = Arc::new(AtomicU64::new(0));
    let heard = unanswered.clone();
    let input = source
        .take_while(|message| futures::future::ready(message.is_ok()))
        .inspect(move |_| heard.store(0, Ordering::Relaxed))
        .filter_map(|message| {
            futures::future::ready(match message {
                Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let (init_done, init_expiry) = (initialized.clone(), expiry.clone());
    let output = async_graphql::http::WebSocket::new(schema, input, protocol).on_connection_init(move |payload| async move {
        let (principal, token_expiry) =
            auth.session(init_token(&payload).as_deref()).map_err(|e| async_graphql::Error::new(format!("{}: {e}", e.code())))?;
        let mut data = async_graphql::Data::default();
        data.insert(principal);
        // The socket outlives the check: its token's end is kept.
        if let Some(token_expiry) = token_expiry {
            data.insert(token_expiry);
            *init_expiry.lock().unwrap_or_else(|p| p.into_inner()) = Some(token_expiry);
        }
        data.insert(ConnectionId(CONNECTIONS.fetch_add(1, Ordering::Relaxed)));
        if let Some(ip) = ip {
            data.insert(ip);
        }
        init_done.store(true, Ordering::SeqCst);
        Ok(data)
    });
    let output = output.map(move |message| match message {
        WsMessage::Text(text) => Message::Text(text.into()),
        // async-graphql closes a refused init with 1002; the protocol says 4403.
        WsMessage::Close(1002, reason) if protocol == WebSocketProtocols::GraphQLWS && reason.starts_with("UNAUTHENTICATED") => {
            close(FORBIDDEN, reason)
        }
        WsMessage::Close(code, reason) => close(code, reason),
    });
    futures::pin_mut!(output);
    let init_deadline = tokio::time::sleep(timing.init_within);
    tokio::pin!(init_deadline);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + timing.ping_every, timing.ping_every);
    loop {
        let expires_in = expiry.lock().unwrap_or_else(|p| p.into_inner()).map(|e| e.remaining() + FLUSH_BEFORE_CLOSE);
        let expired = async move {
            match expires_in {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        // A peer that stops reading fills its TCP window and a send waits:
        // it gets one ping interval, then the socket is given up on.
        let within = timing.ping_every;
        let ended = tokio::select! {
            message = output.next() => match message {
                Some(message) => !send(&mut sink, message, within).await,
                None => true,
            },
            () = &mut init_deadline, if !initialized.load(Ordering::SeqCst) => {
                send(&mut sink, close(INIT_TIMEOUT, "Connection initialisation timeout".into()), within).await;
                true
            }
            _ = ping.tick() => {
                if unanswered.fetch_add(1, Ordering::Relaxed) >= 1 {
                    send(&mut sink, close(GOING_AWAY, "no answer to ping".into()), within).await;
                    true
                } else {
                    !send(&mut sink, Message::Ping(Default::default()), within).await
                }
            }
            () = expired => {
                send(&mut sink, close(FORBIDDEN, "Forbidden: the token expired".into()), within).await;
                true
            }
        };
        if ended {
            break;
        }
    }
}

/// Whether `message` was sent within `within`.
async fn send(sink: &mut (impl futures::Sink<Message> + Unpin), message: Message, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, sink.send(message)).await, Ok(Ok(())))
}

fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}
