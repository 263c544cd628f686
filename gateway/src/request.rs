//! What a resolver knows of its request: the caller (anonymous once its
//! socket's token expired), the gateway's state, the request's trace, and
//! the filters that keep a caller to its own checkouts.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions};
use chorus_event_store::{EventPayload, RecordedEvent};
use futures::{Stream, StreamExt};
use chorus_domain::ClientId;

use crate::{GatewayError, GatewayState, auth::Principal};

/// The caller, as the HTTP handler or the WebSocket `connection_init` found it.
/// The caller; anonymous once the token of its socket has expired, so that
/// nothing more runs on a socket whose token ran out.
pub(crate) fn principal(ctx: &Context<'_>) -> Principal {
    if ctx.data_opt::<crate::auth::Expiry>().is_some_and(crate::auth::Expiry::passed) {
        return Principal::Anonymous;
    }
    ctx.data_opt::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

/// `stream`, ended with `UNAUTHENTICATED` when the socket's token expires.
pub(crate) fn until_expiry<S, T>(ctx: &Context<'_>, stream: S) -> impl Stream<Item = async_graphql::Result<T>> + use<S, T>
where
    S: Stream<Item = async_graphql::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let Some(expiry) = ctx.data_opt::<crate::auth::Expiry>().copied() else { return stream.left_stream() };
    let deadline = Box::pin(tokio::time::sleep(expiry.remaining()));
    futures::stream::unfold(Some((Box::pin(stream), deadline)), |state| async move {
        let (mut stream, mut deadline) = state?;
        tokio::select! {
            item = stream.next() => item.map(|item| (item, Some((stream, deadline)))),
            () = &mut deadline => Some((Err(GatewayError::Unauthenticated.extend()), None)),
        }
    })
    .right_stream()
}

/// The gateway's span of this request: a child of the client's
/// `traceparent` header when it sent one, else the root of a new trace.
pub(crate) fn request_trace(ctx: &Context<'_>) -> chorus_runtime::trace::TraceParent {
    ctx.data_opt::<chorus_runtime::trace::TraceParent>()
        .map(chorus_runtime::trace::TraceParent::child)
        .unwrap_or_else(chorus_runtime::trace::TraceParent::new_root)
}

/// The client a checkout's history belongs to.
pub(crate) fn client_of(events: &[chorus_event_store::RecordedEvent]) -> Option<ClientId> {
    events.iter().find_map(|e| match &e.envelope.payload {
        EventPayload::CheckoutInitiated { client_id, .. } | EventPayload::OrderCreated { client_id, .. } => Some(*client_id),
        _ => None,
    })
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a GatewayState {
    // Registered by `build_schema`; its absence is a programming error that
    // every test would catch at the first request.
    ctx.data_unchecked::<GatewayState>()
}

/// Whose share of the per-caller subscription cap a subscription takes:
/// the client or admin, or on an open gateway (no auth) the connection.
pub(crate) fn caller(ctx: &Context<'_>, who: &Principal) -> String {
    match (who, ctx.data_opt::<crate::ConnectionId>()) {
        (Principal::Open, Some(connection)) => format!("open:{}", connection.0),
        _ => who.key(),
    }
}

/// Ends a checkout's stream with `FORBIDDEN` at its first event naming
/// another client, so a client follows only its own checkouts. Events that
/// come before any names the owner reach only an admin: a checkout's first
/// event names it, so an owner misses nothing.
pub(crate) fn owned_by<S>(live: S, who: Principal) -> impl Stream<Item = Result<Arc<RecordedEvent>, GatewayError>> + use<S>
where
    S: Stream<Item = Result<Arc<RecordedEvent>, GatewayError>>,
{
    #[derive(Clone, Copy, PartialEq)]
    enum Owner {
        Unknown,
        Caller,
        Refused,
    }
    let start = if who.admin().is_ok() { Owner::Caller } else { Owner::Unknown };
    live.scan(start, move |owner, item| {
        let item = match (*owner, item) {
            (Owner::Refused, _) => return futures::future::ready(None),
            (_, Err(e)) => Some(Err(e)),
            (known, Ok(event)) => match client_of(std::slice::from_ref(&event)).map(|c| who.acts_as(c)) {
                Some(Err(e)) => {
                    *owner = Owner::Refused;
                    Some(Err(e))
                }
                Some(Ok(())) => {
                    *owner = Owner::Caller;
                    Some(Ok(event))
                }
                None if known == Owner::Caller => Some(Ok(event)),
                None => None,
            },
        };
        futures::future::ready(Some(item))
    })
    .filter_map(futures::future::ready)
}
