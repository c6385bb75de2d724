//! A steadier measure of `trigger` against the floor than criterion's medians on a noisy machine:
//! for 1, 4 and 16 listeners, the best of 101 interleaved rounds (200,000 dispatches each) of the
//! floor (a `Vec<Box<dyn Fn(&E)>>` loop), `trigger` on the global registry and on a local one;
//! then one listener again, for an event type triggered from three places in the program (where
//! the compiler may not inline the dispatch into each of them). Every listener, in the floor and
//! in the registries, has the same body: first an empty one (`black_box` of a field: the floor is
//! then one indirect call, about a nanosecond, so this is the strictest ratio), then the issue's
//! measure, listeners that add the payload to a thread-local counter.
//!
//! Run with `cargo run --release -p event-bus-benches --example trigger_ratio`.

use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

use event_bus::prelude::*;

#[event]
struct Tick1(u64);
#[event]
struct Tick4(u64);
#[event]
struct Tick16(u64);
/// Triggered from three places in this program (the others below), as an event type of a real
/// program usually is: there the compiler may keep the dispatch out of line.
#[event]
struct TickShared(u64);
#[event]
struct Add1(u64);
#[event]
struct Add4(u64);
#[event]
struct Add16(u64);

/// A listener in the hand-written floor: a boxed closure.
type Boxed<E> = Box<dyn Fn(&E) + Send + Sync>;

/// Nanoseconds per call of `body` over `calls` calls. Not inlined: each contender's loop is a
/// function of its own (its closure inlined into it), compiled the same way however large `main`
/// grows.
#[inline(never)]
fn per_call(calls: u32, body: &mut impl FnMut()) -> f64 {
    let began = Instant::now();
    for _ in 0..calls {
        body();
    }
    began.elapsed().as_nanos() as f64 / f64::from(calls)
}

thread_local! {
    /// What the thread-local-add listeners add to.
    static TOTAL: Cell<u64> = const { Cell::new(0) };
}

/// The empty listener body.
fn empty(payload: u64) {
    black_box(payload);
}

/// The listener body: a thread-local add.
fn add(payload: u64) {
    TOTAL.with(|total| total.set(total.get().wrapping_add(payload)));
}

macro_rules! case {
    ($ty:ident, $n:expr) => {
        case!($ty, $n, empty)
    };
    ($ty:ident, $n:expr, $body:ident) => {{
        let n: usize = $n;
        let floor: Vec<Boxed<$ty>> = (0..n)
            .map(|_| Box::new(|e: &$ty| $body(e.0)) as Boxed<$ty>)
            .collect();
        let local = Registry::<$ty>::new();
        for _ in 0..n {
            $ty::register(|e: &$ty| $body(e.0));
            local.register(|e: &$ty| $body(e.0));
        }
        let mut run_floor = || {
            let event = $ty(black_box(1));
            for listener in &floor {
                listener(&event);
            }
        };
        let mut run_global = || {
            black_box($ty(black_box(1)).trigger().is_success());
        };
        let mut run_local = || {
            black_box(local.trigger($ty(black_box(1))).is_success());
        };
        let (mut floor_ns, mut global_ns, mut local_ns) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..101 {
            floor_ns = floor_ns.min(per_call(200_000, &mut run_floor));
            global_ns = global_ns.min(per_call(200_000, &mut run_global));
            local_ns = local_ns.min(per_call(200_000, &mut run_local));
        }
        println!(
            "{n:>2} listener(s): floor {floor_ns:.2} ns | trigger (global) {global_ns:.2} ns = {:.2}x | trigger (local) {local_ns:.2} ns = {:.2}x",
            global_ns / floor_ns,
            local_ns / floor_ns,
        );
    }};
}

/// Two more call sites of `TickShared::trigger`, as other modules of a program would have.
#[inline(never)]
fn elsewhere(n: u64) -> bool {
    let first = TickShared(n).trigger().is_success();
    first && TickShared(n + 1).trigger().is_success()
}

fn main() {
    case!(Tick1, 1);
    case!(Tick4, 4);
    case!(Tick16, 16);
    println!("the same, for an event type triggered from three places in the program:");
    case!(TickShared, 1);
    black_box(elsewhere(black_box(1)));
    println!("listeners that add to a thread-local counter (the issue's measure):");
    case!(Add1, 1, add);
    case!(Add4, 4, add);
    case!(Add16, 16, add);
    black_box(TOTAL.with(Cell::get));
}
