//! The choreographed saga's stall watch: a checkout nobody moves on is
//! failed and compensated after `CHORUS_STALL_DEADLINE`, a watch that dies
//! while it holds one loses nothing, and a checkout that only waits its
//! turn behind a backlog is left alone.

use std::time::Duration;

use chorus_event_store::{Envelope, EventPayload, Pattern};
use chorus_workers::WorkerName;
use uuid::Uuid;

use crate::{
    choreographed::{SETTLE, assert_conserved, checkout, consumer_info, event_types, level, terminal},
    lifecycle::chorus,
    support::{Backend, TestApp, eventually},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_checkout_holding_stock_is_failed_and_compensated() {
    let extra = [("CHORUS_STALL_DEADLINE", "1s")];
    let app = TestApp::start_without(Backend::Sqlite, &extra, false, &[WorkerName::OrderCreation]).await;
    let product = app.create_product("Held", 100, 4).await;
    let id = checkout(&app, Uuid::new_v4(), &[(product, 3)]).await;
    let held = eventually(SETTLE, || async { level(&app, product).await.reserved == 3 }).await;
    assert!(held, "the reservation never happened");
    let view = terminal(&app, id).await;
    assert_eq!(view["status"], "FAILED");
    assert_eq!(view["failedStep"], "stalled");
    assert!(view["failureReason"].as_str().expect("reason").contains("after StockReserved"), "{view}");
    assert_eq!(event_types(&app, id).await, ["CheckoutInitiated", "StockReserved", "StockReleased", "CheckoutFailed"]);
    let l = assert_conserved(&app, product, 4).await;
    assert_eq!((l.available, l.reserved, l.sold), (4, 0, 0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_nobody_reserves_for_is_failed_after_the_deadline() {
    let extra = [("CHORUS_STALL_DEADLINE", "1s")];
    let app = TestApp::start_without(Backend::Sqlite, &extra, false, &[WorkerName::StockReservation]).await;
    let product = app.create_product("Idle", 100, 4).await;
    let id = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    let view = terminal(&app, id).await;
    assert_eq!(view["failedStep"], "stalled");
    assert_eq!(event_types(&app, id).await, ["CheckoutInitiated", "CheckoutFailed"]);

    // The reservation worker coming back late reserves nothing for it.
    let mut late = app.platform().services.clone();
    late = late.with_timeout(Duration::from_secs(2));
    let reserve = chorus_contracts::inventory::Reserve {
        idempotency_key: format!("{id}:reserve"),
        checkout_id: id.into(),
        items: chorus_contracts::Cart::parse(vec![chorus_event_store::CartLine { product_id: product.into(), quantity: 1 }]).expect("cart"),
    };
    let answer = late.call(&reserve).await.expect("answered");
    assert_eq!(answer.status, chorus_contracts::inventory::ReservationStatus::Released);
    let l = assert_conserved(&app, product, 4).await;
    assert_eq!((l.available, l.reserved), (4, 0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_watch_killed_while_it_holds_a_checkout_loses_nothing() {
    // The stall watch holds a fresh checkout in memory for the deadline;
    // killed meanwhile, its event comes back to another replica.
    let app = TestApp::start_without(Backend::Sqlite, &[], false, &[WorkerName::StockReservation, WorkerName::StallWatch]).await;
    let product = app.create_product("Watched", 100, 4).await;
    let mut env = vec![
        ("NATS_URL", app.nats.url()),
        ("CHORUS_DATA_DIR", app.data_dir.path().display().to_string()),
        ("CHORUS_STALL_DEADLINE", "3s".to_owned()),
        ("CHORUS_ACK_WAIT", "1s".to_owned()),
    ];
    env.extend(app.dbs.vars());
    let doomed = chorus(&["worker", "stall-watch"], &env);
    let id = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    let held = eventually(SETTLE, || async { consumer_info(&app, WorkerName::StallWatch).await.is_some_and(|info| info.num_ack_pending == 1) }).await;
    assert!(held, "the stall watch never got the checkout");
    drop(doomed);
    let _replica = chorus(&["worker", "stall-watch"], &env);
    let view = terminal(&app, id).await;
    assert_eq!(view["failedStep"], "stalled", "{view}");
    assert_eq!(event_types(&app, id).await, ["CheckoutInitiated", "CheckoutFailed"]);
    let l = assert_conserved(&app, product, 4).await;
    assert_eq!((l.available, l.reserved), (4, 0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_queued_behind_a_backlog_is_not_stalled() {
    // A deadline far shorter than the backlog 400 checkouts make: a queued
    // checkout's worker is alive and acking, so it must wait, not fail.
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_STALL_DEADLINE", "300ms")], false).await;
    let product = app.create_product("Busy", 1, 10_000).await;
    // Published straight to the stream, all at once: faster than any worker.
    let events = &app.platform().events;
    let ids: Vec<Uuid> = (0..400).map(|_| Uuid::now_v7()).collect();
    let appends = ids.iter().map(|id| {
        let payload = EventPayload::CheckoutInitiated {
            client_id: Uuid::new_v4().into(),
            items: vec![chorus_event_store::CartLine { product_id: product.into(), quantity: 1 }],
            idempotency_key: None,
        };
        let event = Envelope::new((*id).into(), Pattern::Choreographed, payload).with_derived_id("CheckoutInitiated");
        async move { events.append(&event, None).await.expect("append") }
    });
    futures::future::join_all(appends).await;
    let mut failed = Vec::new();
    for id in &ids {
        let view = terminal(&app, *id).await;
        if view["status"] != "SUCCEEDED" {
            failed.push(view);
        }
    }
    assert!(failed.is_empty(), "{} of {} failed, e.g. {}", failed.len(), ids.len(), failed[0]);
    let l = assert_conserved(&app, product, 10_000).await;
    assert_eq!((l.sold, l.reserved), (400, 0));
    app.stop().await;
}
