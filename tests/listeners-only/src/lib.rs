//! Nothing but a `#[listener]` for another crate's event: no item of this crate is referenced by
//! the tests. This is the set-up in which link-time registration is known to drop entries, so the
//! tests check whether this listener arrives.

use event_bus::listener;
use remote_listeners::RollCall;

#[listener]
fn unreferenced_crate(event: &RollCall) {
    event.answer("listeners_only");
}
