//! The `event-bus` binary run as a process against stores a test prepared: every command group,
//! table and JSON output, the effects of replay, revive, forget, expire and purge, and the exit
//! codes (0 done, 2 usage, 3 not found, 1 failure).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use event_bus::executor::DurableBus;
use event_bus::pipeline::{
    Condition, DeadLetters, Durable, Handler, Idempotency, Join, Message, Next, Pipeline,
    PipelineError, from_fn,
};
use event_bus::prelude::*;
use event_bus::store::{SqliteStore, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn event_bus(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_event-bus"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("EVENT_BUS_STORE")
        .env_remove("EVENT_BUS_SCHEMA")
        .output()
        .expect("run event-bus")
}

/// Runs a command that must succeed and returns its JSON document.
fn json(store: &str, args: &[&str]) -> Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let output = event_bus(store, &with_json);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON document")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code")
}

#[event(name = "cli.signup")]
#[derive(Serialize, Deserialize)]
struct Signup {
    email: String,
}

/// What the test stores: 3 dead letters (2 from `payments`, 1 from `refunds`), 2 dead requests
/// (listeners `cli-mail` and `cli-crm`), 1 pending join missing `payment`, 2 idempotency keys, 1
/// inbox message, 1 quarantined record.
async fn prepare(store: Arc<dyn Store>) {
    let failing = Pipeline::builder()
        .then(DeadLetters::new(Arc::clone(&store)))
        .then(from_fn(|_: Message, _: Next| async {
            Err(PipelineError::permanent("gateway refused"))
        }))
        .build();
    for (source, key) in [("payments", "p1"), ("payments", "p2"), ("refunds", "r1")] {
        failing
            .process(Message::new(source, key, br#"{"cents":100}"#.to_vec()))
            .await
            .expect("parked");
    }

    Signup::durable("cli-mail", |_: Signup| async { Err("smtp down") })
        .max_errors(1)
        .register()
        .expect("register");
    Signup::durable("cli-crm", |_: Signup| async { Err("crm down") })
        .max_errors(1)
        .register()
        .expect("register");
    let bus = DurableBus::new(Arc::clone(&store));
    Signup {
        email: "ada@example.com".into(),
    }
    .publish(&bus)
    .await
    .expect("publish");
    assert_eq!(bus.executor().run_once().await.expect("run").dead, 2);

    let join = Join::new(Condition::all_of(["order", "payment"]), Arc::clone(&store));
    join.handle(Message::new("order", "o7", Vec::new()), Next::end())
        .await
        .expect("a part");

    let idempotency = Idempotency::new(Arc::clone(&store));
    for key in ["k1", "k2"] {
        idempotency
            .handle(Message::new("s", key, Vec::new()), Next::end())
            .await
            .expect("recorded");
    }

    let inbox = Durable::new(Arc::clone(&store), Pipeline::builder().build());
    inbox
        .enqueue(Message::new("orders", "o9", Vec::new()))
        .await
        .expect("enqueued");

    store
        .put("dead-letters", "garbage", b"not a letter".to_vec(), None)
        .await
        .expect("a corrupt record");
    // Listing quarantines it.
    assert_eq!(
        DeadLetters::new(Arc::clone(&store))
            .count()
            .await
            .expect("count"),
        4
    );
    DeadLetters::new(Arc::clone(&store))
        .list()
        .await
        .expect("list");
}

fn sqlite_store(dir: &Path) -> (String, Arc<SqliteStore>) {
    let path = dir.join("ops.db");
    let store = Arc::new(SqliteStore::open(&path).expect("open"));
    (path.to_str().expect("utf-8").to_owned(), store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_group_works_end_to_end_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, store) = sqlite_store(dir.path());
    prepare(store.clone()).await;
    let db = db.as_str();

    // Dead letters: list (table and JSON), filters, show, count.
    let table = event_bus(db, &["dead-letters", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains("gateway refused") && text.contains("payments"),
        "{text}"
    );
    let letters = json(db, &["dead-letters", "list"]);
    assert_eq!(letters.as_array().map(Vec::len), Some(3));
    let payments = json(db, &["dead-letters", "list", "--source", "payments"]);
    assert_eq!(payments.as_array().map(Vec::len), Some(2));
    assert_eq!(
        json(db, &["dead-letters", "count", "--source", "refunds"])["count"],
        1
    );
    let none = json(db, &["dead-letters", "count", "--older-than", "1h"]);
    assert_eq!(none["count"], 0);
    let id = letters[0]["id"].as_str().expect("an id").to_owned();
    let shown = json(db, &["dead-letters", "show", &id]);
    assert_eq!(shown["content"], r#"{"cents":100}"#);
    assert_eq!(code(&event_bus(db, &["dead-letters", "show", "nope"])), 3);

    // Replay one into the inbox: removed from the dead letters, present in the inbox.
    let replayed = json(db, &["dead-letters", "replay", &id]);
    assert_eq!(replayed["replayed"][0], id.as_str());
    assert_eq!(json(db, &["dead-letters", "count"])["count"], 2);
    assert_eq!(json(db, &["inbox", "depth"])["count"], 2);
    let inbox = json(db, &["inbox", "list"]);
    assert!(
        inbox
            .as_array()
            .expect("a list")
            .iter()
            .any(|m| m["key"] == "p1")
    );
    assert_eq!(code(&event_bus(db, &["dead-letters", "replay", &id])), 3);
    assert_eq!(code(&event_bus(db, &["dead-letters", "replay"])), 2);
    // Purge with a filter: only the refunds.
    let purged = json(db, &["dead-letters", "purge", "--source", "refunds"]);
    assert_eq!(purged["deleted"].as_array().map(Vec::len), Some(1));
    assert_eq!(json(db, &["dead-letters", "count"])["count"], 1);

    // Dead requests: list, filter, show, revive, delete.
    let dead = json(db, &["dead-requests", "list"]);
    assert_eq!(dead.as_array().map(Vec::len), Some(2));
    let mail = json(db, &["dead-requests", "list", "--listener", "cli-mail"]);
    let key = mail[0]["key"].as_str().expect("a key").to_owned();
    assert_eq!(mail[0]["error"], "smtp down");
    assert_eq!(mail[0]["payload"]["email"], "ada@example.com");
    let shown = json(db, &["dead-requests", "show", &key]);
    assert_eq!(shown["attempts"], 1);
    let revived = json(db, &["dead-requests", "revive", &key]);
    assert_eq!(revived["revived"][0], key.as_str());
    assert_eq!(json(db, &["requests", "count"])["count"], 1);
    assert_eq!(json(db, &["dead-requests", "count"])["count"], 1);
    assert_eq!(code(&event_bus(db, &["dead-requests", "revive", &key])), 3);
    let all = json(
        db,
        &["dead-requests", "revive", "--all", "--listener", "cli-crm"],
    );
    assert_eq!(all["revived"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        json(db, &["requests", "list"]).as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(code(&event_bus(db, &["dead-requests", "delete", &key])), 3);

    // Joins: pending with present and missing sources; expire parks a dead letter.
    let joins = json(db, &["joins", "--all-of", "order,payment", "list"]);
    assert_eq!(joins[0]["key"], "o7");
    assert_eq!(joins[0]["present"][0], "order");
    assert_eq!(joins[0]["missing"][0], "payment");
    let kept = json(
        db,
        &[
            "joins",
            "--all-of",
            "order,payment",
            "expire",
            "--older-than",
            "1h",
        ],
    );
    assert_eq!(kept["expired"].as_array().map(Vec::len), Some(0));
    let expired = json(
        db,
        &[
            "joins",
            "--all-of",
            "order,payment",
            "expire",
            "--older-than",
            "0s",
            "--dead-letters",
            "dead-letters",
        ],
    );
    assert_eq!(expired["expired"][0]["key"], "o7");
    assert_eq!(json(db, &["dead-letters", "count"])["count"], 2);
    assert_eq!(
        code(&event_bus(db, &["joins", "list"])),
        2,
        "--all-of is required"
    );

    // Idempotency: list, forget.
    let keys = json(db, &["idempotency", "list"]);
    assert_eq!(keys[0]["key"], "k1");
    assert_eq!(keys[0]["state"], "done");
    assert_eq!(
        json(db, &["idempotency", "forget", "k1"])["forgotten"][0],
        "k1"
    );
    assert_eq!(json(db, &["idempotency", "count"])["count"], 1);
    assert_eq!(code(&event_bus(db, &["idempotency", "forget", "k1"])), 3);

    // Quarantine: the corrupt letter moved aside; show, delete.
    let quarantined = json(db, &["quarantine", "list"]);
    assert_eq!(quarantined[0]["key"], "garbage");
    let id = quarantined[0]["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        json(db, &["quarantine", "show", &id])["value"],
        "not a letter"
    );
    assert_eq!(
        json(db, &["quarantine", "delete", &id])["deleted"][0],
        id.as_str()
    );
    assert_eq!(json(db, &["quarantine", "count"])["count"], 0);

    // Purge without a filter empties the dead letters.
    json(db, &["dead-letters", "purge"]);
    assert_eq!(json(db, &["dead-letters", "count"])["count"], 0);
    let empty = event_bus(db, &["dead-letters", "list"]);
    assert_eq!(String::from_utf8_lossy(&empty.stdout).trim(), "(none)");
}

#[test]
fn usage_and_store_errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.db");
    let missing = missing.to_str().expect("utf-8");
    let output = event_bus(missing, &["dead-letters", "count"]);
    assert_eq!(code(&output), 1);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no SQLite file"));
    assert!(
        !Path::new(missing).exists(),
        "an operations tool never creates a store"
    );
    let no_store = Command::new(env!("CARGO_BIN_EXE_event-bus"))
        .args(["dead-letters", "count"])
        .env_remove("EVENT_BUS_STORE")
        .output()
        .expect("run");
    assert_eq!(code(&no_store), 2);
    assert_eq!(code(&event_bus(missing, &["no-such-command"])), 2);
    assert_eq!(
        code(&event_bus(
            missing,
            &["dead-letters", "list", "--older-than", "soon"]
        )),
        2
    );
}

/// The same tool on PostgreSQL (skipped with a line when `EVENT_BUS_POSTGRES_URL` is not set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_works_on_postgres() {
    let Ok(url) = std::env::var("EVENT_BUS_POSTGRES_URL") else {
        assert!(
            std::env::var_os("EVENT_BUS_REQUIRE_SERVICES").is_none(),
            "EVENT_BUS_REQUIRE_SERVICES is set but EVENT_BUS_POSTGRES_URL is not"
        );
        eprintln!("skipped: set EVENT_BUS_POSTGRES_URL to run the PostgreSQL variant");
        return;
    };
    let schema = format!("event_bus_cli_{:016x}", fastrand::u64(..));
    let store = event_bus::store::PostgresStore::options()
        .schema(&schema)
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect");
    let letters = DeadLetters::new(Arc::new(store));
    letters
        .record(
            Message::new("payments", "p1", Vec::new()),
            &PipelineError::permanent("declined"),
        )
        .await
        .expect("parked");
    let run = |args: &[&str]| {
        let mut full = vec!["--schema", schema.as_str(), "--json"];
        full.extend_from_slice(args);
        let output = event_bus(&url, &full);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).expect("JSON")
    };
    assert_eq!(run(&["dead-letters", "count"])["count"], 1);
    assert_eq!(
        run(&["dead-letters", "purge"])["deleted"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(run(&["dead-letters", "count"])["count"], 0);

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("drop the schema");
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// From a fault hunt: the tool refuses files that are not event-bus stores (and leaves them as
/// they were), and prints a JSON document for failures too.
#[test]
fn foreign_sqlite_files_are_refused_untouched_and_failures_print_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("an empty file");
    let empty = empty.to_str().expect("utf-8");
    let output = event_bus(empty, &["--json", "dead-letters", "count"]);
    assert_eq!(code(&output), 1);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an event-bus store"));
    let document: Value = serde_json::from_slice(&output.stdout).expect("a JSON document");
    assert_eq!(document["exit_code"], 1);
    assert_eq!(
        std::fs::metadata(empty).expect("still there").len(),
        0,
        "untouched"
    );
}

/// From a fault hunt: a letter whose message is still in the inbox (perhaps in flight, about to
/// be parked again) is not replayed, and stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_whose_message_is_still_in_the_inbox_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, store) = sqlite_store(dir.path());
    let message = Message::new("payments", "p1", Vec::new());
    DeadLetters::new(store.clone())
        .record(message.clone(), &PipelineError::permanent("declined"))
        .await
        .expect("parked");
    let inbox = Durable::new(store.clone(), Pipeline::builder().build());
    assert!(inbox.enqueue(message).await.expect("enqueued"));
    let letters = json(&db, &["dead-letters", "list"]);
    let id = letters[0]["id"].as_str().expect("an id").to_owned();
    let output = event_bus(&db, &["--json", "dead-letters", "replay", &id]);
    assert_eq!(code(&output), 1);
    assert_eq!(json(&db, &["dead-letters", "count"])["count"], 1, "kept");
    let with_filter = event_bus(&db, &["dead-letters", "replay", &id, "--source", "x"]);
    assert_eq!(code(&with_filter), 2, "filters with one id");
}
