//! Inventory through NATS: reservations under concurrency never oversell,
//! idempotency keys decide once, and stock is always conserved.

use chorus_contracts::{
    Cart, CartLine, ServiceError,
    inventory::{CancelReservation, CheckAvailability, Commit, Levels, Release, ReservationStatus, Reserve, Restock, StockLevel},
};
use uuid::Uuid;

use crate::{
    both_backends,
    support::{Backend, TestApp},
};

both_backends!(
    concurrent_reservations_never_oversell,
    a_repeated_key_changes_nothing,
    release_and_commit_settle_once,
    multi_line_reservations_are_all_or_nothing,
    availability_is_checked_without_holding_anything,
    a_committed_reservation_is_undone_only_when_asked,
    a_reservation_settles_in_one_stock_update_whatever_its_lines,
);

async fn level(app: &TestApp, product: Uuid) -> StockLevel {
    let levels = app.platform().services.call(&Levels { product_ids: Some(vec![product.into()]) }).await.expect("levels");
    levels.into_iter().next().expect("a level")
}

fn assert_conserved(level: &StockLevel, stocked: i64) {
    assert_eq!(level.available + level.reserved + level.sold, stocked, "stock not conserved: {level:?}");
    assert!(level.available >= 0 && level.reserved >= 0 && level.sold >= 0, "{level:?}");
}

fn reserve(product: Uuid, quantity: u32) -> Reserve {
    let checkout_id = Uuid::new_v4();
    Reserve {
        idempotency_key: format!("{checkout_id}:reserve_stock"),
        checkout_id: checkout_id.into(),
        items: cart(&[(product, quantity)]),
    }
}

fn cart(lines: &[(Uuid, u32)]) -> Cart {
    Cart::parse(lines.iter().map(|&(product_id, quantity)| CartLine { product_id: product_id.into(), quantity }).collect()).expect("a valid cart")
}

async fn concurrent_reservations_never_oversell(backend: Backend) {
    let app = TestApp::start_with(backend, &[("CHORUS_SERVICE_TIMEOUT", "30s")], false).await;
    const STOCK: i64 = 50;
    let product = app.create_product("Scarce grinder", 10000, STOCK).await;
    let services = app.platform().services.clone();
    // 120 callers at once want 1 or 2 units each: far more than 50.
    let tasks: Vec<_> = (0..120u32)
        .map(|i| {
            let services = services.clone();
            tokio::spawn(async move { services.call(&reserve(product, 1 + i % 2)).await })
        })
        .collect();
    let mut taken = 0i64;
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(r) => {
                assert_eq!(r.status, ReservationStatus::Held);
                taken += i64::from(r.items[0].quantity);
            }
            Err(ServiceError::InsufficientStock(_)) => refused += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let after = level(&app, product).await;
    assert!(taken <= STOCK, "oversold: {taken} > {STOCK}");
    assert!(refused > 0);
    assert_eq!(after.reserved, taken);
    assert_eq!(after.available, STOCK - taken);
    // Whatever is left is less than the smallest request that was refused.
    assert!(after.available <= 1, "{after:?}");
    assert_conserved(&after, STOCK);
    app.stop().await;
}

async fn a_repeated_key_changes_nothing(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Kettle", 5900, 5).await;
    let services = &app.platform().services;
    let request = reserve(product, 3);

    let first = services.call(&request).await.expect("reserved");
    let again = services.call(&request).await.expect("same answer");
    assert_eq!(first, again);
    let after = level(&app, product).await;
    assert_eq!((after.available, after.reserved), (2, 3));

    // A refused reservation stays refused under its key, even after a restock.
    let too_big = reserve(product, 4);
    let refused = services.call(&too_big).await.expect_err("only 2 left");
    assert!(matches!(refused, ServiceError::InsufficientStock(_)), "{refused}");
    services.call(&Restock { product_id: product.into(), quantity: 10 }).await.expect("restock");
    let still = services.call(&too_big).await.expect_err("same answer");
    assert_eq!(still, refused);
    let after = level(&app, product).await;
    assert_eq!((after.available, after.reserved), (12, 3));
    assert_conserved(&after, 15);
    app.stop().await;
}

async fn release_and_commit_settle_once(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Filters", 690, 10).await;
    let services = &app.platform().services;

    let a = services.call(&reserve(product, 4)).await.expect("a");
    let b = services.call(&reserve(product, 3)).await.expect("b");

    let released = services.call(&Release { reservation_id: a.id }).await.expect("release");
    assert_eq!(released.status, ReservationStatus::Released);
    let twice = services.call(&Release { reservation_id: a.id }).await.expect("idempotent");
    assert_eq!(twice.status, ReservationStatus::Released);

    let committed = services.call(&Commit { reservation_id: b.id }).await.expect("commit");
    assert_eq!(committed.status, ReservationStatus::Committed);
    services.call(&Commit { reservation_id: b.id }).await.expect("idempotent");

    let after = level(&app, product).await;
    assert_eq!((after.available, after.reserved, after.sold), (7, 0, 3));
    assert_conserved(&after, 10);

    assert!(matches!(services.call(&Release { reservation_id: b.id }).await, Err(ServiceError::Conflict(_))));
    assert!(matches!(services.call(&Commit { reservation_id: a.id }).await, Err(ServiceError::Conflict(_))));
    assert!(matches!(
        services.call(&Release { reservation_id: Uuid::new_v4() }).await,
        Err(ServiceError::NotFound(_))
    ));
    assert_eq!(level(&app, product).await, after, "refused settlements changed stock");
    app.stop().await;
}

async fn multi_line_reservations_are_all_or_nothing(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let plenty = app.create_product("Beans", 2490, 100).await;
    let scarce = app.create_product("Grinder", 12900, 1).await;
    let services = &app.platform().services;
    let checkout_id = Uuid::new_v4();
    let request = Reserve {
        idempotency_key: format!("{checkout_id}:reserve_stock"),
        checkout_id: checkout_id.into(),
        items: cart(&[(plenty, 10), (scarce, 2)]),
    };
    let refused = services.call(&request).await.expect_err("grinder is short");
    assert!(matches!(refused, ServiceError::InsufficientStock(ref m) if m.contains(&scarce.to_string())), "{refused}");
    assert_eq!(level(&app, plenty).await.available, 100, "partial reservation kept");
    assert_eq!(level(&app, scarce).await.available, 1);

    // A body whose cart breaks a rule is refused before anything runs.
    let empty = serde_json::json!({ "idempotency_key": "k", "checkout_id": checkout_id, "items": [] });
    let answer = services.nats().request("inventory.reserve", empty.to_string().into()).await.expect("answered");
    let code = answer.headers.as_ref().and_then(|h| h.get("Nats-Service-Error-Code")).map(|c| c.as_str().to_owned());
    assert_eq!(code.as_deref(), Some("400"), "an empty cart is bad input");
    let unknown = services.call(&reserve(Uuid::new_v4(), 1)).await;
    assert!(matches!(unknown, Err(ServiceError::InsufficientStock(_))), "{unknown:?}");
    app.stop().await;
}

async fn availability_is_checked_without_holding_anything(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let beans = app.create_product("Beans", 2490, 10).await;
    let grinder = app.create_product("Grinder", 12900, 1).await;
    let services = &app.platform().services;
    let check = |lines: &[(Uuid, u32)]| CheckAvailability { items: cart(lines), checkout_id: None };

    let ok = services.call(&check(&[(beans, 10)])).await.expect("check");
    assert!(ok.available && ok.shortages.is_empty());

    let short = services
        .call(&check(&[(beans, 3), (grinder, 2)]))
        .await
        .expect("check");
    assert!(!short.available);
    assert_eq!(short.shortages.len(), 1);
    assert_eq!((short.shortages[0].product_id, short.shortages[0].available), (grinder.into(), 1));
    assert_eq!(level(&app, beans).await.available, 10, "a check held stock");
    app.stop().await;
}

/// A sold reservation (committed) is a conflict for the choreography's
/// abort, which reads it as "the checkout succeeded"; the orchestrator
/// undoing a checkout whose order it cancelled asks for the units back on
/// sale, once, however often it asks.
async fn a_committed_reservation_is_undone_only_when_asked(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Sold kettle", 900, 10).await;
    let services = &app.platform().services;
    let request = reserve(product, 3);
    let held = services.call(&request).await.expect("reserved");
    services.call(&Commit { reservation_id: held.id }).await.expect("committed");
    let cancel = |restock_sold| CancelReservation { idempotency_key: request.idempotency_key.clone(), checkout_id: request.checkout_id, restock_sold };

    let refused = services.call(&cancel(false)).await;
    assert!(matches!(refused, Err(ServiceError::Conflict(_))), "{refused:?}");
    let after = level(&app, product).await;
    assert_eq!((after.available, after.reserved, after.sold), (7, 0, 3));

    for _ in 0..2 {
        services.call(&cancel(true)).await.expect("undone");
        let after = level(&app, product).await;
        assert_eq!((after.available, after.reserved, after.sold), (10, 0, 0), "undone once");
        assert_conserved(&after, 10);
    }
    // A commit after the undo cannot sell the units again.
    let late = services.call(&Commit { reservation_id: held.id }).await;
    assert!(matches!(late, Err(ServiceError::Conflict(_))), "{late:?}");
}

async fn a_reservation_settles_in_one_stock_update_whatever_its_lines(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let products = [app.create_product("Beans", 2490, 10).await, app.create_product("Filters", 690, 10).await, app.create_product("Mug", 1200, 10).await];
    let services = &app.platform().services;
    // The reservation's move, then its stock in one UPDATE (on Postgres,
    // after locking the rows in product order).
    let expected = if backend == Backend::Postgres { 3.0 } else { 2.0 };
    let mut sorted = products;
    sorted.sort();
    for settle in ["commit", "release"] {
        let checkout_id = Uuid::new_v4();
        let lines = [(products[0], 1), (products[1], 2), (products[2], 3)];
        let request = Reserve { idempotency_key: format!("{checkout_id}:reserve_stock"), checkout_id: checkout_id.into(), items: cart(&lines) };
        let held = services.call(&request).await.expect("reserved");
        let before = app.statements("inventory").await;
        let settled = match settle {
            "commit" => services.call(&Commit { reservation_id: held.id }).await,
            _ => services.call(&Release { reservation_id: held.id }).await,
        }
        .expect("settled");
        assert_eq!(app.statements("inventory").await - before, expected, "{settle}: statements");
        let answered: Vec<Uuid> = settled.items.iter().map(|l| l.product_id.into()).collect();
        assert_eq!(answered, sorted, "{settle}: every line, by product id");
        let mut reserved = held.items.clone();
        reserved.sort_by_key(|l| l.product_id);
        assert_eq!(settled.items, reserved, "{settle}: the lines reserved");
    }
    // Committed 1, 2 and 3, then reserved and released as many.
    for (product, sold) in products.iter().zip([1, 2, 3]) {
        let after = level(&app, *product).await;
        assert_eq!((after.available, after.reserved, after.sold), (10 - sold, 0, sold), "{after:?}");
        assert_conserved(&after, 10);
    }
    app.stop().await;
}
