//! `#[listener]` functions from two modules of this crate and from two other crates (one of them
//! referenced by nothing) are all registered before the event's first dispatch.

use event_bus::Event;
use listeners_only as _;
use remote_listeners::RollCall;

mod billing {
    use event_bus::listener;
    use remote_listeners::RollCall;

    #[listener(priority = 10)]
    fn billing(event: &RollCall) {
        event.answer("billing");
    }
}

mod shipping {
    use std::sync::Arc;

    use event_bus::listener;
    use remote_listeners::RollCall;

    #[listener(priority = -1)]
    async fn shipping_by_ref(event: &RollCall) {
        tokio::task::yield_now().await;
        event.answer("shipping_by_ref");
    }

    #[listener(name = "shipping-by-arc", priority = -2)]
    async fn shipping_by_arc(event: Arc<RollCall>) -> Result<(), std::io::Error> {
        event.answer("shipping_by_arc");
        Ok(())
    }
}

#[tokio::test]
async fn listeners_from_two_modules_and_two_other_crates_all_receive_the_first_dispatch() {
    let event = RollCall::default();
    let attendance = event.attendance();
    // The very first use of the registry is this dispatch.
    let report = event.deliver().await;
    assert!(report.is_success(), "{report}");

    let mut names = attendance.names();
    // Priorities order them: billing (10), remote_async (5), the two 0s in link order, then -1, -2.
    assert_eq!(names[..2], ["billing", "remote_async"]);
    assert_eq!(names[4..], ["shipping_by_ref", "shipping_by_arc"]);
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "billing",
            "listeners_only",
            "remote_async",
            "remote_sync",
            "shipping_by_arc",
            "shipping_by_ref"
        ]
    );
}

#[test]
fn default_names_are_function_paths_and_name_option_overrides() {
    let names = RollCall::registry().listener_names();
    assert!(
        names.contains(&"static_listeners::billing::billing".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"remote_listeners::remote_sync".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"listeners_only::unreferenced_crate".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"remote-async".to_owned()), "{names:?}");
    assert!(names.contains(&"shipping-by-arc".to_owned()), "{names:?}");
}

/// `#[event(crate = path)]` names `event_bus` through another path (a renamed or re-exported
/// dependency).
mod renamed {
    pub mod reexport {
        pub use event_bus as bus;
    }

    #[event_bus::event(crate = self::reexport::bus, name = "renamed.ping")]
    pub struct Ping;

    #[test]
    fn an_event_can_name_the_crate_through_another_path() {
        use event_bus::Event;
        assert_eq!(Ping::NAME, "renamed.ping");
        assert_eq!(Ping.trigger().listeners(), 0);
    }
}

/// A `#[listener]` function is removed by its name (its path by default).
mod removable {
    use event_bus::prelude::*;

    #[event]
    pub struct Cleanup;

    #[listener]
    fn sweep(_: &Cleanup) {}

    #[test]
    fn a_listener_function_can_be_unregistered_by_its_path() {
        let registry = Cleanup::registry();
        let name = registry.listener_names()[0].clone();
        assert!(name.ends_with("removable::sweep"), "{name}");
        assert_eq!(registry.unregister_named(&name), 1);
        assert_eq!(Cleanup.trigger().listeners(), 0);
        assert_eq!(registry.unregister_named(&name), 0);
    }
}
