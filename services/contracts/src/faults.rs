//! Fault injection (DESIGN §4): a service operation can be made to answer an
//! error, or never answer, for a share of its calls, so that compensation,
//! timeouts and recovery can be shown and measured.
//!
//! Faults are set at start from `CHORUS_FAULTS`, and at run time (only with
//! `CHORUS_FAULT_INJECTION=1`) by a message on [`CONTROL_SUBJECT`] that every
//! process of every service receives.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use chorus_runtime::config::{FaultMode, FaultSpec};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::ServiceError;

/// Core NATS subject on which fault changes are broadcast (no queue group:
/// every replica must apply them).
pub const CONTROL_SUBJECT: &str = "chorus.control.faults";

/// The faults in force in this process; cheap to clone, shared by its services.
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<RwLock<HashMap<String, FaultSpec>>>);

impl Faults {
    pub fn new(specs: &[FaultSpec]) -> Self {
        let faults = Faults::default();
        for spec in specs {
            faults.set(spec.clone());
        }
        faults
    }

    /// Sets or, with mode `NONE` or rate 0, clears the fault on a target.
    pub fn set(&self, spec: FaultSpec) {
        let mut map = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if spec.mode == FaultMode::None || spec.rate <= 0.0 {
            map.remove(&spec.target);
        } else {
            map.insert(spec.target.clone(), spec);
        }
    }

    /// Decides whether this call to `target` fails, and how.
    pub fn roll(&self, target: &str) -> Option<FaultMode> {
        let map = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let spec = map.get(target)?;
        (rand::random::<f64>() < spec.rate).then_some(spec.mode)
    }

    pub fn list(&self) -> Vec<FaultSpec> {
        let map = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut list: Vec<FaultSpec> = map.values().cloned().collect();
        list.sort_by(|a, b| a.target.cmp(&b.target));
        list
    }
}

/// Applies every fault broadcast on [`CONTROL_SUBJECT`] until `stop`.
pub async fn listen(
    nats: async_nats::Client,
    faults: Faults,
    stop: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut sub = nats.subscribe(CONTROL_SUBJECT).await?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                () = stop.cancelled() => break,
                msg = sub.next() => match msg { Some(msg) => msg, None => break },
            };
            let answer = match serde_json::from_slice::<FaultSpec>(&msg.payload) {
                Ok(spec) => match FaultSpec::new(&spec.target, spec.mode, spec.rate) {
                    Ok(spec) => {
                        tracing::warn!(target_op = %spec.target, mode = ?spec.mode, rate = spec.rate, "fault set");
                        faults.set(spec);
                        "ok".to_owned()
                    }
                    Err(e) => e,
                },
                Err(e) => format!("not a fault: {e}"),
            };
            if let Some(reply) = msg.reply {
                let _ = nats.publish(reply, answer.into()).await;
            }
        }
    });
    Ok(())
}

/// Sends a fault to every running service process; succeeds when at least
/// one applied it.
pub async fn broadcast(nats: &async_nats::Client, spec: &FaultSpec) -> Result<(), ServiceError> {
    let payload = serde_json::to_vec(spec).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(Duration::from_secs(2)));
    let reply = nats.send_request(CONTROL_SUBJECT, request).await.map_err(|e| {
        ServiceError::Unavailable(format!("no service process accepts fault changes ({e})"))
    })?;
    match std::str::from_utf8(&reply.payload) {
        Ok("ok") => Ok(()),
        Ok(other) => Err(ServiceError::BadInput(other.to_owned())),
        Err(_) => Err(ServiceError::Internal("unreadable answer to a fault change".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_one_always_fires_and_none_clears() {
        let faults = Faults::new(&[FaultSpec::new("orders.create", FaultMode::Error, 1.0).expect("valid")]);
        assert!((0..100).all(|_| faults.roll("orders.create") == Some(FaultMode::Error)));
        assert_eq!(faults.roll("inventory.reserve"), None);
        faults.set(FaultSpec::new("orders.create", FaultMode::None, 1.0).expect("valid"));
        assert_eq!(faults.roll("orders.create"), None);
        assert!(faults.list().is_empty());
    }

    #[test]
    fn a_rate_fires_about_that_often() {
        let faults = Faults::new(&[FaultSpec::new("catalogue.get", FaultMode::Timeout, 0.3).expect("valid")]);
        let hits = (0..10_000).filter(|_| faults.roll("catalogue.get").is_some()).count();
        assert!((2_500..3_500).contains(&hits), "{hits}");
    }
}
