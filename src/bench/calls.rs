//! What a bench client sends and reads: one checkout of each style as the
//! GraphQL API answers it, the order fault behind `--fail-rate`, and each
//! product's stock at the end.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::{STOCK, report::StockCheck};
use crate::ChorusError;
use crate::client::{Api, Feed, Outcome};

/// How long one choreographed checkout may take before it counts as lost.
const CHECKOUT_LIMIT: Duration = Duration::from_secs(60);

/// A checkout compensates when every attempt of its order step fails, so
/// each call fails with `share^(1/attempts)`.
pub(super) fn per_call_rate(share: f64, attempts: u32) -> f64 {
    share.powf(1.0 / f64::from(attempts.max(1)))
}

pub(super) async fn set_order_fault(api: &Api, rate: f64) -> Result<(), ChorusError> {
    let mode = if rate > 0.0 { "ERROR" } else { "NONE" };
    let query = format!("mutation($r: Float!) {{ setFault(target: \"orders.create\", mode: {mode}, rate: $r) }}");
    api.gql(&query, json!({ "r": rate })).await.map(drop).map_err(|e| {
        ChorusError::Bench(format!("cannot set a fault on orders.create (--fail-rate needs CHORUS_FAULT_INJECTION=1): {e}"))
    })
}

const ORCHESTRATED: &str = "mutation($i: CheckoutInput!) { checkoutOrchestrated(input: $i) { id state } }";
const CHOREOGRAPHED: &str = "mutation($i: CheckoutInput!) { checkoutChoreographed(input: $i) { checkoutId } }";

pub(super) async fn orchestrated_checkout(api: &Api, input: serde_json::Value) -> Result<(Uuid, Outcome), String> {
    let data = api.gql(ORCHESTRATED, input).await.map_err(|e| e.to_string())?;
    let saga = &data["checkoutOrchestrated"];
    let id = saga["id"].as_str().and_then(|s| s.parse().ok()).ok_or("no saga id")?;
    match saga["state"].as_str() {
        Some("COMPLETED") => Ok((id, Outcome::Succeeded)),
        Some("CANCELLED") => Ok((id, Outcome::Failed)),
        other => Err(format!("saga {id} answered in state {other:?}")),
    }
}

pub(super) async fn choreographed_checkout(api: &Api, feed: &Feed, input: serde_json::Value) -> Result<(Uuid, Instant, Outcome), String> {
    let data = api.gql(CHOREOGRAPHED, input).await.map_err(|e| e.to_string())?;
    let id: Uuid = data["checkoutChoreographed"]["checkoutId"].as_str().and_then(|s| s.parse().ok()).ok_or("no checkout id")?;
    match tokio::time::timeout(CHECKOUT_LIMIT, feed.terminal(id)).await {
        Ok(Ok((at, outcome))) => Ok((id, at, outcome)),
        Ok(Err(_)) => Err("the event subscription ended".into()),
        Err(_) => Err(format!("checkout {id} did not end within {CHECKOUT_LIMIT:?}")),
    }
}

/// Each product's stock once nothing is held any more (bounded wait).
pub(super) async fn stock_checks(api: &Api, pattern: &str, products: &[Uuid], succeeded: i64) -> Result<Vec<StockCheck>, ChorusError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut checks = Vec::new();
        for id in products {
            let data = api
                .gql("query($id: ID!) { product(id: $id) { stock reserved sold } }", json!({ "id": id }))
                .await
                .map_err(|e| ChorusError::Bench(format!("cannot read product {id}: {e}")))?;
            let p = &data["product"];
            let field = |k: &str| p[k].as_i64().unwrap_or(-1);
            checks.push(StockCheck {
                pattern: pattern.to_owned(),
                product_id: *id,
                stocked: STOCK,
                available: field("stock"),
                reserved: field("reserved"),
                sold: field("sold"),
                expected_sold: succeeded,
            });
        }
        if checks.iter().all(|c| c.reserved == 0) || Instant::now() > deadline {
            return Ok(checks);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_call_fault_rate_gives_the_asked_share_of_compensations() {
        for (share, attempts) in [(0.1, 3), (0.5, 1), (1.0, 3), (0.25, 2)] {
            let rate = per_call_rate(share, attempts);
            assert!((rate.powi(attempts as i32) - share).abs() < 1e-9, "{share} {attempts} -> {rate}");
        }
        assert_eq!(per_call_rate(0.0, 3), 0.0);
    }

}
