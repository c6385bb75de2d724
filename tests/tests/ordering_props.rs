//! Property: whatever sequence of registrations (with arbitrary priorities) and removals, dispatch
//! order is priority descending and, among equal priorities, registration order; and removals
//! remove exactly the listeners they name.

use std::sync::{Arc, Mutex};

use event_bus::prelude::*;
use proptest::prelude::*;

#[event]
struct Probe;

#[derive(Debug, Clone)]
enum Op {
    Register(i8),
    /// Remove the n-th live subscription (modulo the number alive).
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (-3i8..=3).prop_map(Op::Register),
        1 => any::<usize>().prop_map(Op::Remove),
    ]
}

proptest! {
    #[test]
    fn dispatch_order_matches_a_stable_sort_by_priority(ops in proptest::collection::vec(op(), 0..60)) {
        let registry = Registry::<Probe>::new();
        let calls = Arc::new(Mutex::new(Vec::new()));
        // The model: (registration number, priority, subscription) of live listeners.
        let mut live: Vec<(usize, i8, Subscription<Probe>)> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Register(priority) => {
                    let calls = Arc::clone(&calls);
                    let subscription = registry
                        .listener()
                        .priority(i32::from(priority))
                        .register(move |_: &Probe| calls.lock().unwrap().push(n));
                    live.push((n, priority, subscription));
                }
                Op::Remove(index) if !live.is_empty() => {
                    let (_, _, subscription) = live.remove(index % live.len());
                    prop_assert!(subscription.unsubscribe());
                }
                Op::Remove(_) => {}
            }
        }
        let mut expected: Vec<(usize, i8)> = live.iter().map(|(n, p, _)| (*n, *p)).collect();
        expected.sort_by_key(|(_, priority)| std::cmp::Reverse(*priority)); // stable
        let expected: Vec<usize> = expected.into_iter().map(|(n, _)| n).collect();

        let report = registry.trigger(Probe);
        prop_assert_eq!(report.listeners(), expected.len());
        prop_assert_eq!(&*calls.lock().unwrap(), &expected);
    }
}
