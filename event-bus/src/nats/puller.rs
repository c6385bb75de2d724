//! [`Puller`]: one member's pull subscription, asking the server only for as many events as the
//! member's free slots can start.
//!
//! A pull consumer sends events in answer to pull requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.
//! <consumer>`, answered on a reply subject). async-nats offers two shapes: a batch (a fresh
//! subscription per request, whose subscribe and unsubscribe cost the server and the client more
//! than the events) and a stream (one subscription that asks for the next batch ahead of time, so
//! events wait in the client while every slot is busy, with no progress sent for them: longer than
//! the ack wait and the server redelivers them to another member, a second run). The puller keeps
//! one subscription and never asks for more than the free slots minus what it already asked for:
//! every event it receives can start at once, where its progress is reported.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::{StatusCode, Subscriber};
use futures_util::StreamExt as _;
use tokio::time::Instant;

/// How long one pull request waits on the server for events.
pub(super) const PULL_WAIT: Duration = Duration::from_secs(2);

/// How long after a request's expiry without a word from the server the puller takes its
/// requests for lost (a restarted server forgets them) and asks again.
const SILENCE: Duration = Duration::from_secs(2);

/// What the subscription brought.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once from the subscription to the loop; boxing would allocate per event"
)]
pub(super) enum Pulled {
    /// An event to handle: a slot was free for it when it was asked for.
    Event(jetstream::Message),
    /// The server answered about the requests (expired, refused, a heartbeat): nothing to handle.
    Status,
    /// The consumer is gone (deleted) or cannot be pulled from: open it again.
    ConsumerGone(String),
    /// The subscription ended (the client is closing).
    Closed,
}

/// One member's pull subscription; see the module docs.
pub(super) struct Puller {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    subscriber: Subscriber,
    /// The subscription's subject, where the server answers pull requests.
    inbox: String,
    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
    next_subject: String,
    /// Events asked for and neither received nor given up by the server.
    outstanding: usize,
    /// When the server last answered, or the last request was sent.
    heard: Instant,
}

impl Puller {
    /// Subscribes for `consumer`'s events.
    pub(super) async fn open(
        client: &async_nats::Client,
        jetstream: &jetstream::Context,
        consumer: &jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    ) -> Result<Self, async_nats::SubscribeError> {
        let info = consumer.cached_info();
        let inbox = client.new_inbox();
        let subscriber = client.subscribe(inbox.clone()).await?;
        Ok(Puller {
            client: client.clone(),
            jetstream: jetstream.clone(),
            subscriber,
            inbox,
            next_subject: format!(
                "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
                info.stream_name, info.name
            ),
            outstanding: 0,
            heard: Instant::now(),
        })
    }

    /// Asks for as many events as `free` slots can start beyond those already asked for: at once
    /// when nothing is asked for, else once at least `batch` more can start (so that a member
    /// whose handlers end one by one does not send a request per event).
    pub(super) async fn ask(
        &mut self,
        free: usize,
        batch: usize,
    ) -> Result<(), async_nats::PublishError> {
        let more = free.saturating_sub(self.outstanding);
        if more == 0 || (self.outstanding > 0 && more < batch) {
            return Ok(());
        }
        let request = format!(r#"{{"batch":{more},"expires":{}}}"#, PULL_WAIT.as_nanos());
        self.client
            .publish_with_reply(
                self.next_subject.clone(),
                self.inbox.clone(),
                request.into(),
            )
            .await?;
        self.outstanding += more;
        self.heard = Instant::now();
        Ok(())
    }

    /// When the requests still open are taken for lost if the server has said nothing by then.
    pub(super) fn silent_after(&self) -> Option<Instant> {
        (self.outstanding > 0).then(|| self.heard + PULL_WAIT + SILENCE)
    }

    /// The server said nothing since its requests should have expired (it restarted, or the
    /// connection was down): they are forgotten, and the next [`ask`](Puller::ask) asks anew. An
    /// event of an old request arriving later still finds its way (see [`Pulled::Event`]).
    pub(super) fn forget_requests(&mut self) {
        self.outstanding = 0;
        self.heard = Instant::now();
    }

    /// The next thing the subscription brings.
    pub(super) async fn next(&mut self) -> Pulled {
        let Some(message) = self.subscriber.next().await else {
            return Pulled::Closed;
        };
        self.heard = Instant::now();
        match message.status {
            None | Some(StatusCode::OK) => {
                self.outstanding = self.outstanding.saturating_sub(1);
                Pulled::Event(jetstream::Message {
                    message,
                    context: self.jetstream.clone(),
                })
            }
            Some(StatusCode::IDLE_HEARTBEAT) => Pulled::Status,
            Some(status) => {
                let description = message.description.clone().unwrap_or_default();
                if description.contains("Consumer Deleted")
                    || description.contains("Consumer is push based")
                {
                    self.outstanding = 0;
                    return Pulled::ConsumerGone(description);
                }
                // An expired or refused request says how many of its events it did not bring;
                // without that, every request is taken for done (asking again is harmless: the
                // server sends no more than it has).
                let unused = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get("Nats-Pending-Messages"))
                    .and_then(|count| count.as_str().parse::<usize>().ok());
                match unused {
                    Some(unused) => self.outstanding = self.outstanding.saturating_sub(unused),
                    None => self.outstanding = 0,
                }
                if status == StatusCode::NO_RESPONDERS {
                    return Pulled::ConsumerGone(String::from("no JetStream responders"));
                }
                tracing::trace!(%status, %description, "a pull request ended");
                Pulled::Status
            }
        }
    }

    /// Hands back (without delay) the events that arrived but were not started, then closes the
    /// subscription, so that the server sends nothing more here.
    pub(super) async fn hand_back(mut self) {
        use futures_util::FutureExt as _;
        while let Some(Some(message)) = self.subscriber.next().now_or_never() {
            if !matches!(message.status, None | Some(StatusCode::OK)) {
                continue;
            }
            let message = jetstream::Message {
                message,
                context: self.jetstream.clone(),
            };
            if let Err(error) = message.ack_with(jetstream::AckKind::Nak(None)).await {
                tracing::debug!(%error, "could not hand an event back; the server redelivers it after the ack wait");
            }
        }
        if let Err(error) = self.subscriber.unsubscribe().await {
            tracing::debug!(%error, "could not close a pull subscription");
        }
    }
}
