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
    /// A read model's KV bucket could not be read or written.
    #[error("cannot read or write a read model: {0}")]
    ReadModel(#[source] async_nats::Error),
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
    pub(crate) fn read_model(e: impl Into<async_nats::Error>) -> Self {
        EventStoreError::ReadModel(e.into())
    }
}
