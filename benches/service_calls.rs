//! Latency of one service call through NATS, end to end (client → NATS →
//! service → database → back), on SQLite and on Postgres.
//!
//! `cargo bench -p chorus --bench service_calls`

#[path = "../tests/platform/support.rs"]
mod support;

use chorus_contracts::{Cart, CartLine, catalogue::GetProducts, inventory::Reserve};
use criterion::{Criterion, criterion_group, criterion_main};
use support::{Backend, TestApp};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && support::skip_postgres() {
            continue;
        }
        let app = rt.block_on(TestApp::start_with(backend, &[], false));
        let product = rt.block_on(app.create_product("Bench beans", 100, 1_000_000_000));
        let services = app.platform().services.clone();
        let mut group = c.benchmark_group(format!("{backend:?}"));
        group.bench_function("inventory.reserve (new key)", |b| {
            b.to_async(&rt).iter(|| async {
                let checkout_id = Uuid::new_v4();
                let request = Reserve {
                    idempotency_key: format!("{checkout_id}:reserve_stock"),
                    checkout_id: checkout_id.into(),
                    items: Cart::parse(vec![CartLine { product_id: product.into(), quantity: 1 }]).expect("cart"),
                };
                services.call(&request).await.expect("reserved");
            })
        });
        group.bench_function("catalogue.get (one product)", |b| {
            b.to_async(&rt).iter(|| async {
                let found = services.call(&GetProducts { ids: vec![product.into()], checkout_id: None }).await.expect("get");
                assert_eq!(found.len(), 1);
            })
        });
        group.finish();
        rt.block_on(app.stop());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
