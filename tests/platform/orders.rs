//! Orders through NATS: idempotent creation, reads, cancellation.

use chorus_contracts::{
    ServiceError,
    orders::{CancelOrder, CreateOrder, GetOrder, ListOrdersByClient, OrderLine, OrderStatus},
};
use uuid::Uuid;

use crate::{
    both_backends,
    support::{Backend, TestApp},
};

both_backends!(orders_are_created_once_read_and_cancelled);
both_backends!(orders_are_written_in_two_statements_and_listed_in_two_however_many);

async fn orders_are_created_once_read_and_cancelled(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let services = &app.platform().services;
    let client_id = Uuid::new_v4();
    let checkout_id = Uuid::new_v4();
    let request = CreateOrder {
        idempotency_key: format!("{checkout_id}:create_order"),
        client_id: client_id.into(),
        checkout_id: checkout_id.into(),
        items: vec![
            OrderLine { product_id: Uuid::new_v4().into(), quantity: 2, unit_price_cents: 2490 },
            OrderLine { product_id: Uuid::new_v4().into(), quantity: 1, unit_price_cents: 690 },
        ],
    };
    let order = services.call(&request).await.expect("created");
    assert_eq!(order.total_cents, 2 * 2490 + 690);
    assert_eq!(order.status, OrderStatus::Created);
    let again = services.call(&request).await.expect("same order");
    assert_eq!(again, order);

    let listed = services.call(&ListOrdersByClient { client_id: client_id.into(), limit: None }).await.expect("list");
    assert_eq!(listed, vec![order.clone()], "a repeated key created a second order");
    assert_eq!(services.call(&GetOrder { id: order.id }).await.expect("get"), order);

    let cancelled = services.call(&CancelOrder { id: order.id }).await.expect("cancel");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(services.call(&CancelOrder { id: order.id }).await.expect("again").status, OrderStatus::Cancelled);

    assert!(matches!(services.call(&GetOrder { id: Uuid::new_v4() }).await, Err(ServiceError::NotFound(_))));
    let bad = CreateOrder { idempotency_key: "k".into(), items: vec![], ..request };
    assert!(matches!(services.call(&bad).await, Err(ServiceError::BadInput(_))));
    app.stop().await;
}

async fn orders_are_written_in_two_statements_and_listed_in_two_however_many(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let services = &app.platform().services;
    let client_id = Uuid::new_v4();
    for _ in 0..5 {
        let checkout_id = Uuid::new_v4();
        let line = OrderLine { product_id: Uuid::new_v4().into(), quantity: 1, unit_price_cents: 100 };
        let create = CreateOrder { idempotency_key: format!("{checkout_id}:create_order"), client_id: client_id.into(), checkout_id: checkout_id.into(), items: vec![line] };
        let before = app.statements("orders").await;
        services.call(&create).await.expect("created");
        assert_eq!(app.statements("orders").await - before, 2.0, "an order is written (the order, its lines), not read back");
    }
    let before = app.statements("orders").await;
    let listed = services.call(&ListOrdersByClient { client_id: client_id.into(), limit: None }).await.expect("list");
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|o| o.items.len() == 1), "every order with its line");
    assert_eq!(app.statements("orders").await - before, 2.0, "the orders, then all their lines: not one query per order");
    app.stop().await;
}
