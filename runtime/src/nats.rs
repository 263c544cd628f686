//! The NATS connection every role uses.

use std::time::Duration;

use crate::RuntimeError;

/// How many times a first connection is tried before giving up.
const CONNECT_ATTEMPTS: u32 = 10;

/// Connects to NATS, retrying with backoff for a few seconds so that a
/// process started alongside its NATS server does not lose the race; past
/// that, the error says what to do. Once connected, the client reconnects on
/// its own forever.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, RuntimeError> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        let options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(2));
        match options.connect(url).await {
            Ok(client) => return Ok(client),
            Err(source) if attempt >= CONNECT_ATTEMPTS => {
                return Err(RuntimeError::NatsUnreachable {
                    url: url.to_owned(),
                    attempts: attempt,
                    source,
                });
            }
            Err(e) => {
                tracing::debug!(%url, attempt, error = %e, "NATS not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
                attempt += 1;
            }
        }
    }
}
