//! Catalogue: products and prices.

use serde::{Deserialize, Serialize};

use crate::{CheckoutId, Endpoint, ProductId};

/// A product as the catalogue knows it (stock lives in inventory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub price_cents: i64,
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// Every product, oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListProducts {}

impl Endpoint for ListProducts {
    const SERVICE: &'static str = "catalogue";
    const OPERATION: &'static str = "list";
    type Response = Vec<Product>;
}

/// The products with these ids; unknown ids are left out of the answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetProducts {
    pub ids: Vec<ProductId>,
    #[serde(default)]
    pub checkout_id: Option<CheckoutId>,
}

impl Endpoint for GetProducts {
    const SERVICE: &'static str = "catalogue";
    const OPERATION: &'static str = "get";
    type Response = Vec<Product>;
    fn checkout_id(&self) -> Option<CheckoutId> {
        self.checkout_id
    }
}

/// Adds a product. The caller chooses the id, so that a retried create
/// (same id) returns the product instead of adding a second one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateProduct {
    pub id: ProductId,
    pub name: String,
    pub price_cents: i64,
}

impl Endpoint for CreateProduct {
    const SERVICE: &'static str = "catalogue";
    const OPERATION: &'static str = "create";
    type Response = Product;
}

/// Makes a product sellable or not.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetProductActive {
    pub id: ProductId,
    pub active: bool,
}

impl Endpoint for SetProductActive {
    const SERVICE: &'static str = "catalogue";
    const OPERATION: &'static str = "set_active";
    type Response = Product;
}

/// Prices a cart from the catalogue's answer: every product must exist and
/// be for sale, else the reason it cannot be sold.
pub fn price(items: &[chorus_domain::CartLine], products: &[Product]) -> Result<Vec<crate::orders::OrderLine>, String> {
    items
        .iter()
        .map(|line| match products.iter().find(|p| p.id == line.product_id) {
            None => Err(format!("product {} does not exist", line.product_id)),
            Some(p) if !p.active => Err(format!("product {} ({}) is not for sale", p.id, p.name)),
            Some(p) => Ok(crate::orders::OrderLine { product_id: p.id, quantity: line.quantity, unit_price_cents: p.price_cents }),
        })
        .collect()
}
