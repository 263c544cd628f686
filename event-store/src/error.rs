/// What can go wrong talking to the event store.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error("cannot provision {what}: {source}")]
    Provision {
        what: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("cannot publish event {event_id}: {source}")]
    Publish {
        event_id: uuid::Uuid,
        #[source]
        source: async_nats::Error,
    },
    #[error("cannot read from the event store: {0}")]
    Read(#[source] async_nats::Error),
    #[error("cannot update the checkout index: {0}")]
    Index(#[source] async_nats::Error),
    #[error("event at sequence {sequence} is not a Chorus event: {source}")]
    Decode {
        sequence: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl EventStoreError {
    pub(crate) fn read(e: impl Into<async_nats::Error>) -> Self {
        EventStoreError::Read(e.into())
    }
    pub(crate) fn index(e: impl Into<async_nats::Error>) -> Self {
        EventStoreError::Index(e.into())
    }
}
