#!/usr/bin/env python3
"""Print the ratios BENCHMARKS.md records, from criterion's output of one `cargo bench` run.

Usage (from the workspace root, after `cargo bench -p event-bus-benches`):
    python3 benches/ratios.py [target/criterion]
"""
import json
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def ns(group, bench, param):
    """Mean time in nanoseconds of one benchmark, or None if it did not run."""
    path = ROOT / group / bench / str(param) / "new" / "estimates.json"
    try:
        return json.loads(path.read_text())["mean"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def cell(value, base):
    if value is None or base is None:
        return "n/a"
    return f"{value:.1f} ns ({value / base:.2f}x)"


def table(title, header, rows):
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


COUNTS = [1, 4, 16]
TRIGGER = [
    ("floor_vec_box_dyn_fn", "`Vec<Box<dyn Fn(&E)>>` loop (floor)"),
    ("floor_with_panic_isolation", "floor + `catch_unwind` + count"),
    ("event_bus_trigger", "**event-bus `trigger`** (global registry)"),
    ("event_bus_local_trigger", "event-bus `trigger` (local `Registry`)"),
    ("typeid_any_map_bus", "`TypeId` → `Vec<Box<dyn Any>>` bus + downcast"),
]
table(
    "trigger: one synchronous dispatch (ratio to the floor)",
    ["contender"] + [f"{n} listener(s)" for n in COUNTS],
    [
        [label] + [cell(ns("trigger", bench, n), ns("trigger", "floor_vec_box_dyn_fn", n)) for n in COUNTS]
        for bench, label in TRIGGER
    ],
)

SPAWN = [
    ("tokio_spawn_per_listener", "one `tokio::spawn` per listener, by hand"),
    ("event_bus_spawn", "**event-bus `spawn`** (awaited `Dispatch`)"),
    ("tokio_broadcast_receivers", "`tokio::sync::broadcast` to N receiver tasks"),
]
table(
    "spawn: every listener in its own task, until all finished (ratio to hand-written `tokio::spawn`)",
    ["contender"] + [f"{n} listener(s)" for n in COUNTS],
    [
        [label] + [cell(ns("spawn", bench, n), ns("spawn", "tokio_spawn_per_listener", n)) for n in COUNTS]
        for bench, label in SPAWN
    ],
)

table(
    "types: trigger with 4 listeners, 1 vs 1,000 other event types registered (ratio to 1 type)",
    ["contender", "1 type", "1,000 types"],
    [
        [label, cell(ns("types", bench, "1_type"), ns("types", bench, "1_type")),
         cell(ns("types", bench, "1000_types"), ns("types", bench, "1_type"))]
        for bench, label in [
            ("event_bus_trigger", "**event-bus `trigger`**"),
            ("typeid_any_map_bus", "`TypeId`/`Any` map bus"),
        ]
    ],
)

table(
    "contended: 1 listener, per-call time on each of 2 threads triggering at once (ratio to 1 thread)",
    ["contender", "1 thread", "2 threads"],
    [
        [label, cell(ns("contended", bench, "1_threads"), ns("contended", bench, "1_threads")),
         cell(ns("contended", bench, "2_threads"), ns("contended", bench, "1_threads"))]
        for bench, label in [
            ("floor_vec_box_dyn_fn", "floor"),
            ("event_bus_trigger", "**event-bus `trigger`** (global)"),
            ("event_bus_local_trigger", "event-bus `trigger` (local)"),
            ("typeid_any_map_bus", "`TypeId`/`Any` map bus (`RwLock`)"),
        ]
    ],
)

HOP = [
    ("direct_boxed_future_call", "a direct call through a boxed future"),
    ("pipeline_one_handler", "**a pipeline with one handler**"),
    ("pipeline_two_handlers", "a pipeline with two handlers (one pass-through hop more)"),
]
base = ns("hop", "direct_boxed_future_call", "")
table(
    "hop: one message through an empty step (ratio to a direct boxed-future call)",
    ["contender", "time per message"],
    [[label, cell(ns("hop", bench, ""), base)] for bench, label in HOP],
)


def per_second(store):
    path = ROOT / "orders_pipeline" / store
    runs = sorted(path.glob("*_messages")) if path.exists() else []
    if not runs:
        return "n/a"
    messages = int(runs[0].name.split("_")[0])
    mean = json.loads((runs[0] / "new" / "estimates.json").read_text())["mean"]["point_estimate"]
    return f"{messages / (mean / 1e9):,.0f} messages/s ({mean / 1e6 / messages * 1e3:.1f} µs per message)"


table(
    "orders pipeline: erase -> join -> idempotency -> handler, 32 messages in flight",
    ["store", "throughput"],
    [
        ["`MemoryStore`", per_second("memory_store")],
        ["`SqliteStore` (WAL, group commit)", per_second("sqlite_store")],
    ],
)


def events_per_second(bench):
    value = ns("cloudevents", bench, "")
    return None if value is None else 1e9 / value


CLOUDEVENTS = [
    ("bare_client_to_bare_handler", "hand-written hyper client → bare axum handler (200)"),
    ("bare_client_to_receiver", "hand-written client → **our `Receiver`** (decode + awaited listener)"),
    ("sender_to_bare_handler", "**our `Sender`** (typed event) → bare handler"),
    ("sender_to_receiver", "our `Sender` → our `Receiver`"),
]
bare = events_per_second("bare_client_to_bare_handler")
table(
    "cloudevents: one event per request over loopback keep-alive (throughput relative to bare)",
    ["path", "events/s", "relative"],
    [
        [
            label,
            "n/a" if events_per_second(bench) is None else f"{events_per_second(bench):,.0f}",
            "n/a" if None in (events_per_second(bench), bare) else f"{events_per_second(bench) / bare:.0%}",
        ]
        for bench, label in CLOUDEVENTS
    ],
)


def durable_rate(bench):
    value = ns("durable", bench, "200_events")
    return None if value is None else 200 / (value / 1e9)


DURABLE = [
    ("durable_inbox_submit", "`Durable` inbox: persist, handle, remove"),
    ("publish_and_execute", "**durable listener**: `publish`, then an `Executor` runs the request"),
]
inbox_rate = durable_rate("durable_inbox_submit")
table(
    "durable listeners on SQLite: 200 events, 32 at a time (ratio to the `Durable` inbox)",
    ["contender", "events/s", "ratio"],
    [
        [label,
         "n/a" if durable_rate(bench) is None else f"{durable_rate(bench):,.0f}",
         "n/a" if durable_rate(bench) is None or inbox_rate is None
         else f"{durable_rate(bench) / inbox_rate:.0%}"]
        for bench, label in DURABLE
    ],
)


def plain(group, bench, param=""):
    path = ROOT / group / bench / str(param) / "new" / "estimates.json"
    if not param:
        path = ROOT / group / bench / "new" / "estimates.json"
    try:
        return json.loads(path.read_text())["mean"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


rows = []
for events in ["10000", "10099"]:
    full = plain("aggregate_load", "full_replay", events)
    snap = plain("aggregate_load", "snapshot_every_100", events)
    rows.append([
        f"{int(events):,} events",
        "n/a" if full is None else f"{full / 1e6:.2f} ms",
        "n/a" if snap is None else f"{snap / 1e3:.0f} µs",
        "n/a" if full is None or snap is None else f"{full / snap:.0f}x",
    ])
table("event store: loading one aggregate on SQLite (full replay vs snapshot every 100)",
      ["stream", "full replay", "snapshot + tail", "speed-up"], rows)

raw = plain("append", "raw_store_batch")
rows = []
for bench, label in [
    ("raw_store_batch", "the same records straight to the store (one batch)"),
    ("event_log_append", "**`EventLog::append_raw`** (head and stream checked)"),
    ("repository_execute_new_stream", "`Repository::execute` (load, decide, append)"),
]:
    value = plain("append", bench)
    rows.append([
        label,
        "n/a" if value is None else f"{value / 1e3:.1f} µs",
        "n/a" if value is None or raw is None else f"{raw / value:.0%}",
    ])
table("event store: appending one event at a time on SQLite (throughput relative to raw)",
      ["contender", "per event", "throughput vs raw"], rows)
