//! The event model: one envelope around a typed payload.
//!
//! On the wire (DESIGN §2) an event is
//! `{"id","type","checkout_id","pattern","emitted_at","causation_id","payload":{...}}`.

pub use chorus_domain::{CartLine, CheckoutId, ClientId, EventType, Pattern, ProductId, SagaState};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One line of an order, with the price it was sold at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

/// Every event type; the variant name is the `type` field and the subject's
/// last token. Field names are the JSON keys of `payload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum EventPayload {
    CheckoutInitiated {
        client_id: ClientId,
        items: Vec<CartLine>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
    },
    StockReserved {
        reservation_id: Uuid,
        items: Vec<CartLine>,
        /// The cart priced when the stock was reserved, so that the order
        /// step need not ask the catalogue again (absent from events
        /// stored before it was added: the order step then asks).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        priced: Vec<OrderLine>,
        /// Whose checkout it is and when it began (its `CheckoutInitiated`),
        /// so that the order step need not read the history; absent from
        /// events stored before they were added: the history is read then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "micros_rfc3339::option")]
        initiated_at: Option<OffsetDateTime>,
    },
    StockReservationFailed {
        reason: String,
        code: String,
    },
    OrderCreated {
        order_id: Uuid,
        client_id: ClientId,
        total_cents: i64,
        items: Vec<OrderLine>,
    },
    OrderCreationFailed {
        reservation_id: Option<Uuid>,
        reason: String,
        code: String,
    },
    StockReleased {
        reservation_id: Uuid,
    },
    CheckoutSucceeded {
        order_id: Uuid,
        /// Whose checkout it was, so that the notification need not read
        /// the checkout's history (absent from events stored before it
        /// was added: the history is read then).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    CheckoutFailed {
        reason: String,
        /// The step that failed (`reserve_stock`, `create_order`, …).
        step: String,
        /// As in `CheckoutSucceeded`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// A move of the orchestrated saga's state machine.
    ///
    /// One event records one write of the saga log: when that write passed
    /// through states without a call in between (a step's end and the next
    /// one's start), they are in `via`, in order, and `to` is where the saga
    /// rests. [`EventPayload::transitions`] spells out each move.
    SagaTransitioned {
        from: Option<SagaState>,
        to: SagaState,
        /// Why the saga entered `to`.
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        via: Vec<PassedState>,
    },
}

/// A state a [`EventPayload::SagaTransitioned`] passed through on its way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedState {
    pub state: SagaState,
    /// Why the saga entered it.
    pub reason: Option<String>,
}

/// One move of the saga's state machine, as recorded by an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition<'a> {
    pub from: Option<SagaState>,
    pub to: SagaState,
    pub reason: Option<&'a str>,
}

impl EventPayload {
    pub fn event_type(&self) -> EventType {
        match self {
            EventPayload::CheckoutInitiated { .. } => EventType::CheckoutInitiated,
            EventPayload::StockReserved { .. } => EventType::StockReserved,
            EventPayload::StockReservationFailed { .. } => EventType::StockReservationFailed,
            EventPayload::OrderCreated { .. } => EventType::OrderCreated,
            EventPayload::OrderCreationFailed { .. } => EventType::OrderCreationFailed,
            EventPayload::StockReleased { .. } => EventType::StockReleased,
            EventPayload::CheckoutSucceeded { .. } => EventType::CheckoutSucceeded,
            EventPayload::CheckoutFailed { .. } => EventType::CheckoutFailed,
            EventPayload::SagaTransitioned { .. } => EventType::SagaTransitioned,
        }
    }

    /// Every move a `SagaTransitioned` records, in order (none for other events).
    pub fn transitions(&self) -> Vec<Transition<'_>> {
        let EventPayload::SagaTransitioned { from, to, reason, via } = self else {
            return Vec::new();
        };
        let mut moves = Vec::with_capacity(via.len() + 1);
        let mut previous = *from;
        for passed in via {
            moves.push(Transition { from: previous, to: passed.state, reason: passed.reason.as_deref() });
            previous = Some(passed.state);
        }
        moves.push(Transition { from: previous, to: *to, reason: reason.as_deref() });
        moves
    }

    /// Whether this event ends its checkout.
    pub fn is_terminal(&self) -> bool {
        matches!(self, EventPayload::CheckoutSucceeded { .. } | EventPayload::CheckoutFailed { .. })
    }
}

/// An event with its metadata, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique; also the `Nats-Msg-Id`, so publishing it twice stores it once.
    pub id: Uuid,
    pub checkout_id: CheckoutId,
    pub pattern: Pattern,
    #[serde(with = "micros_rfc3339")]
    pub emitted_at: OffsetDateTime,
    /// The event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    #[serde(flatten)]
    pub payload: EventPayload,
}

impl Envelope {
    /// A new event with a fresh id.
    pub fn new(checkout_id: CheckoutId, pattern: Pattern, payload: EventPayload) -> Self {
        Envelope {
            id: Uuid::now_v7(),
            checkout_id,
            pattern,
            // So that an event equals itself after a round trip through the stream.
            emitted_at: chorus_runtime::clock::now_micros(),
            causation_id: None,
            payload,
        }
    }

    /// The same event with an id derived from `(checkout, name)`, so that a
    /// worker that re-publishes after a crash produces the same id and the
    /// stream's dedupe drops the copy.
    pub fn with_derived_id(mut self, name: &str) -> Self {
        self.id = Uuid::new_v5(&self.checkout_id.0, name.as_bytes());
        self
    }

    pub fn caused_by(mut self, cause: Uuid) -> Self {
        self.causation_id = Some(cause);
        self
    }

    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }
}

/// An event read back from the stream, with where it sits.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub sequence: u64,
    pub envelope: Envelope,
    /// The W3C trace context it was published with.
    pub traceparent: Option<String>,
}

/// RFC 3339 in UTC with exactly six fractional digits, as DESIGN §2 says.
pub mod micros_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
    use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339, macros::format_description};

    pub fn format(t: OffsetDateTime) -> Result<String, time::error::Format> {
        t.to_offset(UtcOffset::UTC).format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
    }

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OffsetDateTime::parse(&raw, &Rfc3339).map_err(D::Error::custom)
    }

    /// The same, for an optional field.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
        use time::{OffsetDateTime, format_description::well_known::Rfc3339};

        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            let raw = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            raw.map(|raw| OffsetDateTime::parse(&raw, &Rfc3339).map_err(D::Error::custom)).transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_is_the_contract() {
        let checkout = CheckoutId::new_v4();
        let event = Envelope::new(
            checkout,
            Pattern::Choreographed,
            EventPayload::CheckoutSucceeded { order_id: Uuid::nil(), client_id: None },
        );
        let json: serde_json::Value = serde_json::to_value(&event).expect("serializes");
        let keys: Vec<&str> = json.as_object().expect("object").keys().map(String::as_str).collect();
        for key in ["id", "type", "checkout_id", "pattern", "emitted_at", "causation_id", "payload"] {
            assert!(keys.contains(&key), "missing {key} in {json}");
        }
        assert_eq!(json["type"], "CheckoutSucceeded");
        assert_eq!(json["pattern"], "choreographed");
        let emitted = json["emitted_at"].as_str().expect("string");
        assert_eq!(emitted.len(), "2026-11-25T10:00:00.123456Z".len(), "{emitted}");
        let back: Envelope = serde_json::from_value(json).expect("round trip");
        assert_eq!(back.id, event.id);
        assert_eq!(back.payload, event.payload);
    }

    #[test]
    fn derived_ids_are_stable_per_checkout_and_name() {
        let checkout = CheckoutId::new_v4();
        let a = Envelope::new(checkout, Pattern::Choreographed, EventPayload::StockReleased { reservation_id: Uuid::nil() });
        let b = a.clone();
        assert_eq!(a.with_derived_id("release").id, b.with_derived_id("release").id);
        let c = Envelope::new(checkout, Pattern::Choreographed, EventPayload::StockReleased { reservation_id: Uuid::nil() });
        assert_ne!(c.clone().with_derived_id("release").id, c.with_derived_id("other").id);
    }

    #[test]
    fn the_type_field_is_the_event_type_name() {
        let sample = EventPayload::SagaTransitioned { from: None, to: SagaState::Pending, reason: None, via: Vec::new() };
        let json = serde_json::to_value(Envelope::new(CheckoutId::default(), Pattern::Orchestrated, sample.clone())).expect("json");
        assert_eq!(json["type"], sample.event_type().as_str());
    }

    #[test]
    fn a_transition_event_spells_out_the_states_it_passed() {
        use SagaState::*;
        let passed = |state, reason: Option<&str>| PassedState { state, reason: reason.map(Into::into) };
        let event = EventPayload::SagaTransitioned {
            from: Some(VerifyingStock),
            to: Compensating,
            reason: None,
            via: vec![passed(FailedInsufficientStock, Some("insufficient stock"))],
        };
        let moves: Vec<_> = event.transitions().iter().map(|t| (t.from, t.to, t.reason)).collect();
        assert_eq!(
            moves,
            [
                (Some(VerifyingStock), FailedInsufficientStock, Some("insufficient stock")),
                (Some(FailedInsufficientStock), Compensating, None),
            ]
        );
        // A single move keeps the wire shape it always had: no `via`.
        let single = EventPayload::SagaTransitioned { from: None, to: Pending, reason: None, via: Vec::new() };
        let json = serde_json::to_value(&single).expect("serializes");
        assert!(json["payload"].get("via").is_none(), "{json}");
        assert_eq!(single.transitions().len(), 1);
    }
}
