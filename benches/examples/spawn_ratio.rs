//! A steadier measure of `spawn` against hand-written per-listener `tokio::spawn` than
//! criterion's means on a noisy machine: for 1, 4 and 16 listeners, the median and the best of 61
//! interleaved rounds (20,000 dispatches each) of both, awaited to the end on a current-thread
//! runtime (the same set-up as the criterion bench's `spawn` group).
//!
//! Run with `cargo run --release -p event-bus-benches --example spawn_ratio`; an argument (`1`, `4`
//! or `16`) runs only that listener count, and `--with-handle` adds a third contender, interleaved
//! with the two: the hand-written loop that also asks tokio for the runtime handle first
//! (`Handle::try_current`, which `spawn` needs to report a missing runtime instead of panicking),
//! to tell that cost from the dispatch's own.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use event_bus::prelude::*;
use event_bus_benches::{Listener, spawn_per_listener};
use tokio::runtime::Runtime;

#[event]
struct Job1(u64);
#[event]
struct Job4(u64);
#[event]
struct Job16(u64);

/// Rounds per contender; the median and the best are printed.
const ROUNDS: usize = 61;
/// Dispatches per round.
const DISPATCHES: u32 = 20_000;

/// Nanoseconds per dispatch of `dispatch` over one round, inside one `block_on`.
fn per_dispatch<F, Fut>(runtime: &Runtime, dispatch: &F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    runtime.block_on(async {
        let began = Instant::now();
        for _ in 0..DISPATCHES {
            dispatch().await;
        }
        began.elapsed().as_nanos() as f64 / f64::from(DISPATCHES)
    })
}

/// The median and the best of `times`.
fn median_best(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

macro_rules! case {
    ($runtime:expr, $ty:ident, $n:expr, $with_handle:expr) => {{
        let runtime: &Runtime = $runtime;
        let with_handle: bool = $with_handle;
        let n: usize = $n;
        let listeners: Vec<Listener<$ty>> = (0..n)
            .map(|_| {
                $ty::register(|e: &$ty| {
                    black_box(e.0);
                });
                Arc::new(|e: &$ty| {
                    black_box(e.0);
                }) as Listener<$ty>
            })
            .collect();
        let plain = || spawn_per_listener::<$ty, false>(&listeners, $ty(black_box(1)));
        let with_lookup = || spawn_per_listener::<$ty, true>(&listeners, $ty(black_box(1)));
        let ours = || async {
            black_box($ty(black_box(1)).spawn().await.is_success());
        };
        let (mut floor, mut spawned, mut with_handle_times) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            if with_handle {
                with_handle_times.push(per_dispatch(runtime, &with_lookup));
            }
            floor.push(per_dispatch(runtime, &plain));
            spawned.push(per_dispatch(runtime, &ours));
        }
        let (floor_median, floor_best) = median_best(floor);
        let (median, best) = median_best(spawned);
        println!(
            "{n:>2} listener(s): tokio::spawn per listener {floor_median:.0} ns (best {floor_best:.0}) | spawn {median:.0} ns (best {best:.0}) = {:.3}x median, {:.3}x best",
            median / floor_median,
            best / floor_best,
        );
        if with_handle {
            let (median, _) = median_best(with_handle_times);
            println!(
                "    hand-written with Handle::try_current {median:.0} ns = {:.3}x median",
                median / floor_median,
            );
        }
    }};
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the runtime: {error}"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only: Option<usize> = args.iter().find_map(|arg| arg.parse().ok());
    let with_handle = args.iter().any(|arg| arg == "--with-handle");
    let wanted = |n: usize| only.is_none_or(|only| only == n);
    if wanted(1) {
        case!(&runtime, Job1, 1, with_handle);
    }
    if wanted(4) {
        case!(&runtime, Job4, 4, with_handle);
    }
    if wanted(16) {
        case!(&runtime, Job16, 16, with_handle);
    }
}
