//! One transport test suite, run against every transport (modelled on Watermill's universal
//! pub/sub tests): what a transport can do is declared in [`Features`], and each test runs where
//! the features allow it.
//!
//! - [`InProcess`]: a registry of its own, every subscriber a listener running its pipeline
//!   behind a [`Retry`] (a failed delivery is retried in place).
//! - [`Http`]: CloudEvents over HTTP; each subscriber an axum [`Receiver`] on a loopback port, the
//!   publisher a [`Sender`] per subscriber (retrying on 5xx).
//! - [`NatsTransport`]: NATS JetStream; subscribers are members of a durable consumer group.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use event_bus::Registry;
use event_bus::cloudevents::{Receiver, Sender};
use event_bus::nats::{Consuming, Nats};
use event_bus::pipeline::{Pipeline, Retry};
use event_bus::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A boxed future, as the transports return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The event every transport carries.
#[event(name = "transport.item", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Item {
    /// Its number.
    pub id: u64,
}

/// What a transport offers (Watermill's `Features`).
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// Subscribers of one group share the events (each to one of them); without, every
    /// subscriber gets every event.
    pub consumer_groups: bool,
    /// Events published while no subscriber runs are kept for a later one.
    pub persistent: bool,
}

/// A transport under test.
pub trait Transport: Send + Sync {
    /// Its name, for messages.
    fn name(&self) -> &'static str;
    /// What it offers.
    fn features(&self) -> Features;
    /// Publishes item `id`; `Ok` once the transport accepted it (for a transport without a
    /// broker: once the subscribers handled it).
    fn publish(&self, id: u64) -> BoxFuture<'_, Result<(), String>>;
    /// Starts a subscriber in `group` whose deliveries go through `pipeline`.
    fn subscribe(&self, group: &str, pipeline: Pipeline) -> BoxFuture<'_, Box<dyn Subscriber>>;
    /// Removes what the transport left behind (streams on a server).
    fn cleanup(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A running subscriber.
pub trait Subscriber: Send {
    /// Stops it, letting what it holds finish.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The in-process transport.
#[derive(Debug, Default)]
pub struct InProcess {
    registry: Arc<Registry<Item>>,
}

struct Listening(Arc<Registry<Item>>, Option<event_bus::Subscription<Item>>);

impl Subscriber for Listening {
    fn close(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        if let Some(subscription) = self.1.take() {
            self.0.unregister(subscription);
        }
        Box::pin(async {})
    }
}

fn retried(pipeline: Pipeline) -> Pipeline {
    Pipeline::builder()
        .then(
            Retry::new()
                .max_attempts(20)
                .base_delay(Duration::from_millis(2))
                .max_delay(Duration::from_millis(20)),
        )
        .then(pipeline)
        .build()
}

impl Transport for InProcess {
    fn name(&self) -> &'static str {
        "in-process"
    }

    fn features(&self) -> Features {
        Features {
            consumer_groups: false,
            persistent: false,
        }
    }

    fn publish(&self, id: u64) -> BoxFuture<'_, Result<(), String>> {
        let delivery = self.registry.deliver(Item { id });
        Box::pin(async move {
            let report = delivery.await;
            if report.is_success() {
                Ok(())
            } else {
                Err(report.to_string())
            }
        })
    }

    fn subscribe(&self, _group: &str, pipeline: Pipeline) -> BoxFuture<'_, Box<dyn Subscriber>> {
        let pipeline = retried(pipeline);
        let subscription = self.registry.register_async(move |item: Arc<Item>| {
            let pipeline = pipeline.clone();
            async move {
                let message = event_bus::pipeline::Message::from_event(&*item)?;
                pipeline.process(message).await
            }
        });
        let listening: Box<dyn Subscriber> =
            Box::new(Listening(Arc::clone(&self.registry), Some(subscription)));
        Box::pin(async move { listening })
    }
}

/// CloudEvents over HTTP.
#[derive(Debug, Default)]
pub struct Http {
    senders: Arc<Mutex<Vec<(u64, Sender)>>>,
    next: std::sync::atomic::AtomicU64,
}

struct Serving {
    id: u64,
    senders: Arc<Mutex<Vec<(u64, Sender)>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Subscriber for Serving {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        let Serving {
            id,
            senders,
            stop,
            server,
        } = *self;
        senders.lock().retain(|(sender, _)| *sender != id);
        let _ = stop.send(());
        Box::pin(async move {
            let _ = server.await;
        })
    }
}

impl Transport for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn features(&self) -> Features {
        Features {
            consumer_groups: false,
            persistent: false,
        }
    }

    fn publish(&self, id: u64) -> BoxFuture<'_, Result<(), String>> {
        let senders: Vec<Sender> = self.senders.lock().iter().map(|(_, s)| s.clone()).collect();
        Box::pin(async move {
            for sender in senders {
                sender
                    .send(&Item { id })
                    .await
                    .into_result()
                    .map_err(|error| error.to_string())?;
            }
            Ok(())
        })
    }

    fn subscribe(&self, _group: &str, pipeline: Pipeline) -> BoxFuture<'_, Box<dyn Subscriber>> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let senders = Arc::clone(&self.senders);
        Box::pin(async move {
            let app = Receiver::new().pipeline::<Item>(pipeline).into_router();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let url = format!("http://{}/", listener.local_addr().expect("its address"));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
            let sender = Sender::new(&url)
                .expect("a valid URL")
                .source("/transport-suite")
                .timeout(Duration::from_secs(5))
                .retries(20, Duration::from_millis(2), Duration::from_millis(20));
            senders.lock().push((id, sender));
            let serving: Box<dyn Subscriber> = Box::new(Serving {
                id,
                senders,
                stop,
                server,
            });
            serving
        })
    }
}

/// NATS JetStream.
#[derive(Debug)]
pub struct NatsTransport {
    nats: Nats,
}

impl NatsTransport {
    /// A transport on `nats` (give it a subject prefix of its own).
    pub fn new(nats: Nats) -> Self {
        NatsTransport { nats }
    }
}

struct Consumer(Consuming);

impl Subscriber for Consumer {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.0.shutdown().await;
        })
    }
}

impl Transport for NatsTransport {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn features(&self) -> Features {
        Features {
            consumer_groups: true,
            persistent: true,
        }
    }

    fn publish(&self, id: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.nats
                .publish(&Item { id })
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        })
    }

    fn cleanup(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.nats.delete_stream::<Item>().await;
        })
    }

    fn subscribe(&self, group: &str, pipeline: Pipeline) -> BoxFuture<'_, Box<dyn Subscriber>> {
        let consume = self
            .nats
            .consume::<Item>(group)
            .pipeline(pipeline)
            .ack_wait(Duration::from_secs(2))
            .backoff(Duration::from_millis(5), Duration::from_millis(50));
        Box::pin(async move {
            let consuming: Box<dyn Subscriber> =
                Box::new(Consumer(consume.start().await.expect("subscribed")));
            consuming
        })
    }
}
