//! Tracing for every process: JSON lines for machines, pretty text for people.
//!
//! Spans about a checkout carry a `checkout_id` field; with the JSON format
//! the current span's fields are flattened into each line, so every line
//! about a checkout can be found by that one key.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (tests start
/// several platforms in one process): later calls change nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,async_nats=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
    };
    // An error only means a subscriber is already installed.
    let _ = result;
}
