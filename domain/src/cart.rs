//! A cart (DESIGN §3): parsed once, where it enters (the gateway's input, a
//! service request's body), so that past the edge a [`Cart`] always keeps
//! the rules and nobody checks them again.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::ProductId;

/// One line of a cart: a product and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: ProductId,
    pub quantity: u32,
}

/// 1 to [`Cart::MAX_LINES`] lines, each quantity 1 to
/// [`Cart::MAX_QUANTITY`], no product twice. A body holding a cart that
/// breaks a rule does not decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<CartLine>", into = "Vec<CartLine>")]
pub struct Cart(Vec<CartLine>);

impl Cart {
    /// Most lines in one cart.
    pub const MAX_LINES: usize = 100;
    /// Largest quantity of one line.
    pub const MAX_QUANTITY: u32 = 1000;

    /// The cart, or which rule which line breaks (`items[2]: …`).
    pub fn parse(lines: Vec<CartLine>) -> Result<Cart, String> {
        let mut seen = HashSet::new();
        for (index, line) in lines.iter().enumerate() {
            if !(1..=Self::MAX_QUANTITY).contains(&line.quantity) {
                return Err(format!("items[{index}]: quantity {} is outside 1..={}", line.quantity, Self::MAX_QUANTITY));
            }
            if !seen.insert(line.product_id) {
                return Err(format!("items[{index}]: product {} appears twice", line.product_id));
            }
        }
        match lines.len() {
            0 => Err("a cart needs at least one item".into()),
            n if n > Self::MAX_LINES => Err(format!("a cart has at most {} lines, this one has {n}", Self::MAX_LINES)),
            _ => Ok(Cart(lines)),
        }
    }

    pub fn lines(&self) -> &[CartLine] {
        &self.0
    }

    /// Whether two carts hold the same lines, in any order: an idempotency
    /// key names one cart, and a repeat with another cart is a mistake to refuse.
    pub fn same_lines(&self, other: &[CartLine]) -> bool {
        let sorted = |lines: &[CartLine]| {
            let mut lines = lines.to_vec();
            lines.sort_unstable();
            lines
        };
        sorted(&self.0) == sorted(other)
    }
}

impl TryFrom<Vec<CartLine>> for Cart {
    type Error = String;

    fn try_from(lines: Vec<CartLine>) -> Result<Self, String> {
        Cart::parse(lines)
    }
}

impl From<Cart> for Vec<CartLine> {
    fn from(cart: Cart) -> Self {
        cart.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cart(lines: &[(ProductId, u32)]) -> Result<Cart, String> {
        Cart::parse(lines.iter().map(|&(product_id, quantity)| CartLine { product_id, quantity }).collect())
    }

    #[test]
    fn the_rules_of_a_cart() {
        let p = ProductId::new_v4;
        assert!(cart(&[(p(), 1)]).is_ok());
        assert!(cart(&[(p(), 1000)]).is_ok());
        assert!(cart(&[]).expect_err("empty").contains("at least one"));
        assert!(cart(&[(p(), 0)]).expect_err("zero").contains("outside"));
        assert!(cart(&[(p(), 1001)]).expect_err("big").contains("outside"));
        let same = p();
        assert!(cart(&[(same, 1), (same, 2)]).expect_err("dup").contains("twice"));
        let many: Vec<_> = (0..101).map(|_| (p(), 1)).collect();
        assert!(cart(&many).expect_err("long").contains("at most 100"));
    }

    #[test]
    fn a_body_with_a_bad_cart_does_not_decode() {
        assert!(serde_json::from_str::<Cart>("[]").is_err());
        let id = ProductId::new_v4();
        let twice = format!(r#"[{{"product_id":"{id}","quantity":1}},{{"product_id":"{id}","quantity":2}}]"#);
        assert!(serde_json::from_str::<Cart>(&twice).expect_err("dup").to_string().contains("twice"));
        let good: Cart = serde_json::from_str(&format!(r#"[{{"product_id":"{id}","quantity":3}}]"#)).expect("decodes");
        assert_eq!(good.lines(), [CartLine { product_id: id, quantity: 3 }]);
    }

    #[test]
    fn the_same_lines_in_any_order_are_the_same_cart() {
        let (a, b) = (CartLine { product_id: ProductId::new_v4(), quantity: 1 }, CartLine { product_id: ProductId::new_v4(), quantity: 2 });
        let cart = Cart::parse(vec![a, b]).expect("valid");
        assert!(cart.same_lines(&[b, a]));
        assert!(!cart.same_lines(&[a]));
    }
}
