//! The three events of an order, each with its own typed registry.

use event_bus::event;
use serde::{Deserialize, Serialize};

/// A customer placed an order. Its `details` are large and nobody downstream needs them: the
/// pipeline erases them before the join stores the part.
#[event(name = "order.requested", key = order_id)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRequested {
    pub order_id: u64,
    pub customer: String,
    pub details: String,
}

/// The payment service took the money.
#[event(name = "payment.confirmed", key = order_id)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentConfirmed {
    pub order_id: u64,
    pub cents: u64,
}

/// The warehouse set the goods aside.
#[event(name = "inventory.reserved", key = order_id)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryReserved {
    pub order_id: u64,
    pub sku: String,
    pub quantity: u32,
}
