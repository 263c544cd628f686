//! Every subject and filter of the event store, built in one place (DESIGN §2).

use chorus_domain::{CheckoutId, EventType};

/// The stream that holds every checkout event.
pub const STREAM: &str = "CHECKOUT_EVENTS";
/// The subjects the stream captures.
pub const ALL: &str = "ecommerce.checkout.>";
/// The prefix of every event subject; the `topic` label of event metrics.
pub const TOPIC: &str = "ecommerce.checkout";

/// `ecommerce.checkout.<checkout_id>.<EventType>`
pub fn event(checkout_id: CheckoutId, event_type: EventType) -> String {
    format!("{TOPIC}.{checkout_id}.{event_type}")
}

/// Every event of one checkout: `ecommerce.checkout.<checkout_id>.*`.
pub fn checkout(checkout_id: CheckoutId) -> String {
    format!("{TOPIC}.{checkout_id}.*")
}

/// One event type across checkouts: `ecommerce.checkout.*.<EventType>`.
pub fn event_type(event_type: EventType) -> String {
    format!("{TOPIC}.*.{event_type}")
}

/// The checkout id and event type of an event subject, if it is one.
pub fn parse(subject: &str) -> Option<(CheckoutId, EventType)> {
    let rest = subject.strip_prefix(TOPIC)?.strip_prefix('.')?;
    let (id, event_type) = rest.split_once('.')?;
    Some((id.parse().ok()?, event_type.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let id = CheckoutId::new_v4();
        let s = event(id, EventType::StockReserved);
        assert_eq!(s, format!("ecommerce.checkout.{id}.StockReserved"));
        assert_eq!(parse(&s), Some((id, EventType::StockReserved)));
        assert_eq!(checkout(id), format!("ecommerce.checkout.{id}.*"));
        assert_eq!(event_type(EventType::OrderCreated), "ecommerce.checkout.*.OrderCreated");
        assert_eq!(parse("ecommerce.checkout.not-a-uuid.OrderCreated"), None);
        assert_eq!(parse(&format!("ecommerce.checkout.{id}.A.B")), None);
        assert_eq!(parse(&format!("ecommerce.checkout.{id}.NoSuchEvent")), None);
    }
}
