//! The orders scenario shared by the crash worker and the restart and crash tests: three event types
//! per order, produced shuffled with duplicates and some orders missing a part; a pipeline that
//! erases the large part, joins the three, checks idempotency and records the business effect.

use std::collections::BTreeSet;
use std::sync::Arc;

use std::time::Duration;

use event_bus::pipeline::{
    Condition, DeadLetters, Idempotency, Join, Message, Pipeline, PipelineError, Transform,
    handle_json, stage,
};
use event_bus::prelude::*;
use event_bus::store::{Batch, Store};
use serde::{Deserialize, Serialize};

/// An order was placed (carries a large note, erased before the join).
#[event(name = "order.requested", key = order_id)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRequested {
    /// The order.
    pub order_id: u64,
    /// A large payload nobody downstream needs.
    pub note: String,
}

/// The order was paid.
#[event(name = "payment.confirmed", key = order_id)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentConfirmed {
    /// The order.
    pub order_id: u64,
    /// Amount paid.
    pub cents: u64,
}

/// Stock was set aside for the order.
#[event(name = "inventory.reserved", key = order_id)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryReserved {
    /// The order.
    pub order_id: u64,
    /// What was reserved.
    pub sku: String,
}

/// The joined input of the business handler: one field per source.
#[derive(Debug, Deserialize)]
pub struct Ready {
    /// The erased order request (its content is empty, so a string).
    #[serde(rename = "order.requested")]
    pub order: String,
    /// The payment.
    #[serde(rename = "payment.confirmed")]
    pub payment: PaymentConfirmed,
    /// The reservation.
    #[serde(rename = "inventory.reserved")]
    pub inventory: InventoryReserved,
}

/// Namespace of the business effects: one record `"{order}#{uuid}"` per application, so applying
/// an order twice would show as two records.
pub const EFFECTS: &str = "effects";

/// A deterministic stream for `orders` orders: every part of every order, `duplicates` percent of
/// them sent twice, and every 97th order missing its inventory part, shuffled with `seed`. Returns
/// the messages and the set of complete orders.
pub fn stream(
    orders: u64,
    duplicates: u8,
    seed: u64,
) -> Result<(Vec<Message>, BTreeSet<u64>), PipelineError> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut messages = Vec::new();
    let mut complete = BTreeSet::new();
    for order_id in 0..orders {
        let mut parts = vec![
            Message::from_event(&OrderRequested {
                order_id,
                note: "x".repeat(2048),
            })?,
            Message::from_event(&PaymentConfirmed {
                order_id,
                cents: 100 + order_id,
            })?,
        ];
        if order_id % 97 == 13 {
            // never reserved: incomplete
        } else {
            parts.push(Message::from_event(&InventoryReserved {
                order_id,
                sku: format!("sku-{}", order_id % 10),
            })?);
            complete.insert(order_id);
        }
        for part in parts {
            if rng.u8(0..100) < duplicates {
                messages.push(part.clone().with_id(uuid_like(&mut rng)));
            }
            messages.push(part);
        }
    }
    rng.shuffle(&mut messages);
    Ok((messages, complete))
}

fn uuid_like(rng: &mut fastrand::Rng) -> String {
    format!("dup-{:032x}", rng.u128(..))
}

/// erase → join → idempotency → business handler, over `store`.
pub fn pipeline(store: Arc<dyn Store>) -> Pipeline {
    Options::default().pipeline(store)
}

/// Namespace of the flag that makes poison orders succeed (set it to replay their dead letters).
pub const HEALED: &str = "healed";

/// How the orders pipeline is built.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The lease of every claim (default: the library's).
    pub lease: Option<Duration>,
    /// Every order with `order_id % poison == 1` fails permanently in the business handler until
    /// the store holds the `HEALED` flag; failures are parked as dead letters. 0: none.
    pub poison: u64,
    /// A pause in the business handler (to be caught in flight by a kill).
    pub pause: Option<Duration>,
}

impl Options {
    /// Whether `order_id` is a poison order.
    pub fn is_poison(&self, order_id: u64) -> bool {
        self.poison != 0 && order_id % self.poison == 1
    }

    /// [dead letters →] erase → join → idempotency → business handler, over `store`.
    pub fn pipeline(self, store: Arc<dyn Store>) -> Pipeline {
        let mut join = Join::new(
            Condition::all_of([
                OrderRequested::NAME,
                PaymentConfirmed::NAME,
                InventoryReserved::NAME,
            ]),
            Arc::clone(&store),
        );
        let mut idempotency = Idempotency::new(Arc::clone(&store));
        if let Some(lease) = self.lease {
            join = join.lease(lease);
            idempotency = idempotency.lease(lease);
        }
        let mut builder = Pipeline::builder();
        if self.poison != 0 {
            builder = builder.then(DeadLetters::new(Arc::clone(&store)));
        }
        let options = self;
        let business_store = Arc::clone(&store);
        builder
            .then(Transform::erase_content_from([OrderRequested::NAME]))
            .then(join)
            .then(idempotency)
            .then(handle_json(move |ready: Ready| {
                let store = Arc::clone(&business_store);
                async move {
                    assert!(ready.order.is_empty(), "the order request was erased");
                    let order = ready.payment.order_id;
                    if let Some(pause) = options.pause {
                        tokio::time::sleep(pause).await;
                    }
                    if options.is_poison(order) && store.get(HEALED, "flag").await?.is_none() {
                        return Err(PipelineError::permanent(format!("order {order} is poison")));
                    }
                    stage(Batch::new().put(
                        EFFECTS,
                        format!("{order}#{}", fastrand::u64(..)),
                        ready.payment.cents.to_le_bytes().to_vec(),
                        None,
                    ))
                }
            }))
            .build()
    }
}

/// How many times each order's effect was applied, by order.
pub async fn applied(
    store: &dyn Store,
) -> Result<std::collections::BTreeMap<u64, usize>, PipelineError> {
    let mut applied = std::collections::BTreeMap::new();
    for (key, _) in store.scan(EFFECTS, "").await? {
        let order = key
            .split_once('#')
            .and_then(|(order, _)| order.parse::<u64>().ok())
            .ok_or_else(|| PipelineError::Corrupt(format!("effect key {key}")))?;
        *applied.entry(order).or_default() += 1;
    }
    Ok(applied)
}

/// What is still in flight, if anything: a message in the inbox, or a join or idempotency marker
/// that is still a claim (not final).
pub async fn unsettled(store: &dyn Store) -> Result<Option<String>, PipelineError> {
    let inbox = store.count("inbox").await?;
    if inbox > 0 {
        return Ok(Some(format!("{inbox} message(s) in the inbox")));
    }
    for (namespace, done) in [("join:joined", "joined"), ("idempotency", "done")] {
        for (key, value) in store.scan(namespace, "").await? {
            if value != done.as_bytes() {
                let value = String::from_utf8_lossy(&value);
                return Ok(Some(format!("{namespace}/{key} is still claimed: {value}")));
            }
        }
    }
    Ok(None)
}

/// Nothing left in flight: the inbox is empty and every join and idempotency marker is final
/// (no claim left standing).
pub async fn assert_settled(store: &dyn Store) {
    match unsettled(store).await {
        Ok(None) => {}
        Ok(Some(what)) => panic!("not settled: {what}"),
        Err(error) => panic!("cannot read the store: {error}"),
    }
}
