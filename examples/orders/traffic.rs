//! The incoming traffic: every event of every order, shuffled (out of order), with about 5% sent
//! twice and about 1% of orders never getting their inventory reservation.

use event_bus::nats::{Nats, NatsError};
use event_bus::prelude::*;

use crate::events::{InventoryReserved, OrderRequested, PaymentConfirmed};

/// Which event of which order to send.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Order(u64),
    Payment(u64),
    Inventory(u64),
}

/// The shuffled stream, and how many duplicates and incomplete orders it has.
pub struct Traffic {
    pub parts: Vec<Part>,
    pub duplicates: usize,
    pub incomplete: usize,
}

pub fn generate(orders: u64, seed: u64) -> Traffic {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut parts = Vec::with_capacity(orders as usize * 3 + orders as usize / 10);
    let (mut duplicates, mut incomplete) = (0, 0);
    for order_id in 0..orders {
        let mut these = vec![Part::Order(order_id), Part::Payment(order_id)];
        if rng.u8(0..100) == 0 {
            incomplete += 1;
        } else {
            these.push(Part::Inventory(order_id));
        }
        for part in these {
            if rng.u8(0..100) < 5 {
                parts.push(part);
                duplicates += 1;
            }
            parts.push(part);
        }
    }
    rng.shuffle(&mut parts);
    Traffic {
        parts,
        duplicates,
        incomplete,
    }
}

/// Builds the event and dispatches it, awaiting every listener (the pipeline) in order.
pub async fn send(part: Part) -> Report {
    match part {
        Part::Order(order_id) => order(order_id).deliver().await,
        Part::Payment(order_id) => payment(order_id).deliver().await,
        Part::Inventory(order_id) => inventory(order_id).deliver().await,
    }
}

/// Builds the event and publishes it to NATS JetStream, returning once the stream stored it.
pub async fn publish(nats: &Nats, part: Part) -> Result<(), NatsError> {
    match part {
        Part::Order(order_id) => nats.publish(&order(order_id)).await,
        Part::Payment(order_id) => nats.publish(&payment(order_id)).await,
        Part::Inventory(order_id) => nats.publish(&inventory(order_id)).await,
    }
    .map(drop)
}

fn order(order_id: u64) -> OrderRequested {
    OrderRequested {
        order_id,
        customer: format!("customer-{}", order_id % 997),
        details: "gift wrap, deliver after 5pm; ".repeat(64),
    }
}

fn payment(order_id: u64) -> PaymentConfirmed {
    PaymentConfirmed {
        order_id,
        cents: 1_000 + order_id % 9_000,
    }
}

fn inventory(order_id: u64) -> InventoryReserved {
    InventoryReserved {
        order_id,
        sku: format!("SKU-{:04}", order_id % 1_000),
        quantity: 1 + (order_id % 3) as u32,
    }
}
