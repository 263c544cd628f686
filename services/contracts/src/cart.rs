//! The rules of a cart (DESIGN §3), checked by every service that takes one
//! and by the gateway before anything is written or published.

use std::collections::HashSet;

use uuid::Uuid;

/// Most lines in one cart.
pub const MAX_LINES: usize = 100;
/// Largest quantity of one line.
pub const MAX_QUANTITY: u32 = 1000;

/// Checks `(product, quantity)` lines: 1..=100 lines, each quantity
/// 1..=1000, no product twice. The error says which rule and which line.
/// Whether two carts hold the same lines, in any order: an idempotency
/// key names one cart, and a repeat with another cart is a mistake to refuse.
pub fn same_lines(a: impl IntoIterator<Item = (Uuid, u32)>, b: impl IntoIterator<Item = (Uuid, u32)>) -> bool {
    let sorted = |lines: Vec<(Uuid, u32)>| {
        let mut lines = lines;
        lines.sort_unstable();
        lines
    };
    sorted(a.into_iter().collect()) == sorted(b.into_iter().collect())
}

pub fn validate(lines: impl IntoIterator<Item = (Uuid, u32)>) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut count = 0;
    for (index, (product_id, quantity)) in lines.into_iter().enumerate() {
        count += 1;
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(format!("items[{index}]: quantity {quantity} is outside 1..={MAX_QUANTITY}"));
        }
        if !seen.insert(product_id) {
            return Err(format!("items[{index}]: product {product_id} appears twice"));
        }
    }
    match count {
        0 => Err("a cart needs at least one item".into()),
        n if n > MAX_LINES => Err(format!("a cart has at most {MAX_LINES} lines, this one has {n}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_of_a_cart() {
        let p = Uuid::new_v4;
        assert!(validate([(p(), 1)]).is_ok());
        assert!(validate([(p(), 1000)]).is_ok());
        assert!(validate([]).expect_err("empty").contains("at least one"));
        assert!(validate([(p(), 0)]).expect_err("zero").contains("outside"));
        assert!(validate([(p(), 1001)]).expect_err("big").contains("outside"));
        let same = p();
        assert!(validate([(same, 1), (same, 2)]).expect_err("dup").contains("twice"));
        let many: Vec<_> = (0..101).map(|_| (p(), 1)).collect();
        assert!(validate(many).expect_err("long").contains("at most 100"));
    }
}
