//! The NATS connection every role uses.
//!
//! `NATS_URL` is one server or a comma-separated list of a cluster's
//! (`nats://a:4222,nats://b:4222,nats://c:4222`), each optionally with
//! credentials (`nats://user:password@host:4222`). The client picks any
//! listed server that answers and fails over among them (and the servers
//! the cluster gossips) on its own.

use std::time::Duration;

use async_nats::ServerAddr;

use crate::RuntimeError;

/// How many times a first connection is tried before giving up.
const CONNECT_ATTEMPTS: u32 = 10;

/// The servers of a `NATS_URL`, each checked; the message says which one is wrong.
pub fn server_addrs(urls: &str) -> Result<Vec<ServerAddr>, String> {
    let mut addrs = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        if url.contains("://") && !(url.starts_with("nats://") || url.starts_with("tls://")) {
            return Err(format!("{}: expected nats://host:port", redact(url)));
        }
        addrs.push(url.parse::<ServerAddr>().map_err(|e| format!("{}: {e}", redact(url)))?);
    }
    if addrs.is_empty() {
        return Err("expected nats://host:port, or a comma-separated list of them".into());
    }
    Ok(addrs)
}

/// `urls` with every password replaced by `***`, for logs and errors.
pub fn redact(urls: &str) -> String {
    urls.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            },
            _ => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Connects to NATS, retrying with backoff for a few seconds so that a
/// process started alongside its NATS server does not lose the race; past
/// that, the error says what to do. Once connected, the client reconnects on
/// its own forever, to any server of the list or the cluster.
pub async fn connect(urls: &str, name: &str) -> Result<async_nats::Client, RuntimeError> {
    let addrs = server_addrs(urls).map_err(RuntimeError::NatsUrl)?;
    let policy = crate::retry::bounded(Duration::from_millis(100), Duration::from_secs(1), CONNECT_ATTEMPTS);
    crate::retry::until_ok(
        "connecting to NATS",
        policy,
        |_| true,
        || {
            async_nats::ConnectOptions::new()
                .name(name)
                .connection_timeout(Duration::from_secs(2))
                // No reconnect gives up: a cluster may be gone for minutes.
                .max_reconnects(None)
                .connect(addrs.clone())
        },
    )
    .await
    .map_err(|source| RuntimeError::NatsUnreachable { url: redact(urls), attempts: CONNECT_ATTEMPTS, source })
}

/// Runs a JetStream administrative call (provisioning a stream, a bucket, a
/// consumer) until it succeeds. Right after a cluster forms, or while its
/// meta leader is being elected, such calls time out or find no responder
/// for seconds: a role starting then waits, saying so, instead of dying.
pub async fn until_provisioned<T, E, Fut>(what: &str, op: impl FnMut() -> Fut) -> Result<T, E>
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<T, E>>,
{
    let policy = crate::retry::forever(Duration::from_millis(200), Duration::from_secs(5));
    crate::retry::until_ok(what, policy, |e: &E| jetstream_not_ready(&e.to_string()), op).await
}

/// Whether a JetStream error is one of those a cluster without a leader
/// answers (a timeout, no responders, "not ready", no quorum) rather than a
/// refusal that trying again cannot change (a conflicting configuration).
pub fn jetstream_not_ready(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "timed out",
        "timeout",
        "no responders",
        "not ready",
        "unavailable",
        "no suitable peers",
        "quorum",
        "leader",
        "disconnected",
        "connection",
        "broken pipe",
        "insufficient resources",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_list_and_credentials_are_accepted() {
        let addrs = server_addrs("nats://a:4222, nats://b:4223,nats://user:secret@c:4224").expect("parses");
        assert_eq!(addrs.len(), 3);
        assert!(addrs[2].has_user_pass());
        assert_eq!(server_addrs("127.0.0.1:4222").map(|a| a.len()), Ok(1));
        assert!(server_addrs("http://a:4222").is_err());
        assert!(server_addrs(" , ").is_err());
        assert!(server_addrs("nats://a:notaport").is_err());
    }

    #[test]
    fn passwords_never_reach_a_log() {
        assert_eq!(redact("nats://u:p@a:1,nats://b:2"), "nats://u:***@a:1,nats://b:2");
        assert_eq!(redact("nats://token@a:1"), "nats://token@a:1");
    }
}
