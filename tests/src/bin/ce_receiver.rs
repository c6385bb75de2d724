//! A CloudEvents receiver for the crash test, run as a real process and killed with SIGKILL.
//!
//! `ce_receiver DB PORT`: serves `POST /` on 127.0.0.1:PORT; each `test.crash.item` event goes
//! into a durable inbox in the SQLite file DB (answered 200 once stored), then through an
//! idempotency adapter keyed by the event id to a handler that stages one record
//! `applied/<id>/<uuid>` (committed atomically with the idempotency record). A background task
//! recovers the inbox every 300 ms (the messages of a killed run, once their 1 s lease ran out).
//! Prints `listening` once the socket is bound.

use std::sync::Arc;
use std::time::Duration;

use event_bus::cloudevents::Receiver;
use event_bus::pipeline::{Durable, Idempotency, Message, Next, Pipeline, from_fn, stage};
use event_bus::prelude::*;
use event_bus::store::{Batch, SqliteStore};

#[event(name = "test.crash.item", key = n)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Item {
    n: u32,
}

const LEASE: Duration = Duration::from_secs(1);

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, port] = &args[..] else {
        return Err("usage: ce_receiver DB PORT".into());
    };
    let store = Arc::new(SqliteStore::open(db)?);
    let pipeline = Pipeline::builder()
        .then(
            Idempotency::new(Arc::clone(&store))
                .key_by(|message: &Message| message.id().to_owned())
                .lease(LEASE),
        )
        .then(from_fn(|message: Message, next: Next| async move {
            let key = format!("{}/{}", message.id(), uuid_like());
            stage(Batch::new().put("applied", &key, Vec::new(), None))?;
            next.run(message).await
        }))
        .build();
    let inbox = Durable::new(Arc::clone(&store), pipeline).lease(LEASE);
    let recovering = inbox.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = recovering.recover().await;
        }
    });
    let app = Receiver::new().durable::<Item>(inbox).into_router();
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening");
    axum::serve(listener, app).await?;
    Ok(())
}

/// A unique suffix per application (time and a random number are enough for a test).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{nanos:x}-{:x}", fastrand::u64(..))
}
