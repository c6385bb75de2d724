//! Upcasting: reading events appended with an older schema version as the current one.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::Event;

/// An event type at version `N` (`#[event(version = N)]`) that knows how to come from version
/// `N - 1`. Register it with [`register_upcaster`]; events appended at version `N - 1` are then
/// read as `Self` by the [`Repository`](super::Repository), the [`Outbox`](super::Outbox) and
/// [`Projector`](super::Projector)s. Chains work step by step: register an upcaster for each
/// version (the type for `N - 1` can itself be an `Upcast` event with the same name).
///
/// ```
/// use event_bus::event_store::{Upcast, register_upcaster};
/// use event_bus::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// /// Version 1 stored a full name.
/// #[derive(Deserialize)]
/// struct CustomerRegisteredV1 {
///     name: String,
/// }
///
/// /// Version 2 splits it.
/// #[event(name = "shop.customer.registered", version = 2)]
/// #[derive(Serialize, Deserialize)]
/// struct CustomerRegistered {
///     first: String,
///     last: String,
/// }
///
/// impl Upcast for CustomerRegistered {
///     type Previous = CustomerRegisteredV1;
///
///     fn upcast(previous: CustomerRegisteredV1) -> Self {
///         let (first, last) = previous.name.split_once(' ').unwrap_or((&previous.name, ""));
///         CustomerRegistered { first: first.to_owned(), last: last.to_owned() }
///     }
/// }
///
/// register_upcaster::<CustomerRegistered>();
/// ```
pub trait Upcast: Event + Serialize + DeserializeOwned {
    /// The shape of version `Self::VERSION - 1`.
    type Previous: DeserializeOwned;

    /// The current version of an event stored at the previous one.
    fn upcast(previous: Self::Previous) -> Self;
}

type Step = dyn Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync;

/// Upcasters by (event name, version they read).
type Steps = HashMap<(String, u32), Arc<Step>>;

static UPCASTERS: LazyLock<RwLock<Steps>> = LazyLock::new(RwLock::default);

/// Registers `E`'s upcaster from version `E::VERSION - 1` (once for the program; registering
/// again replaces it). Does nothing for a version-1 event.
///
/// ```
/// # use event_bus::event_store::{Upcast, register_upcaster};
/// # use event_bus::prelude::*;
/// # #[event(name = "doc.upcast.register", version = 2)]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Renamed { title: String }
/// # impl Upcast for Renamed {
/// #     type Previous = String;
/// #     fn upcast(title: String) -> Self { Renamed { title } }
/// # }
/// register_upcaster::<Renamed>();
/// ```
pub fn register_upcaster<E: Upcast>() {
    let Some(from) = E::VERSION.checked_sub(1).filter(|from| *from >= 1) else {
        return;
    };
    let step = |payload: serde_json::Value| -> Result<serde_json::Value, String> {
        let previous = serde_json::from_value::<E::Previous>(payload).map_err(|error| {
            format!(
                "cannot read `{}` version {} as its previous shape: {error}",
                E::NAME,
                E::VERSION - 1
            )
        })?;
        serde_json::to_value(E::upcast(previous)).map_err(|error| error.to_string())
    };
    UPCASTERS
        .write()
        .insert((E::NAME.to_owned(), from), Arc::new(step));
}

/// `payload`, an event `name` at version `from`, as version `to`.
pub(crate) fn to_version(
    name: &str,
    from: u32,
    to: u32,
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, String> {
    if from > to {
        return Err(format!(
            "`{name}` was appended at version {from}, newer than this program's version {to}"
        ));
    }
    for version in from..to {
        let step = UPCASTERS.read().get(&(name.to_owned(), version)).cloned();
        let Some(step) = step else {
            return Err(format!(
                "no upcaster registered for `{name}` from version {version} to {}",
                version + 1
            ));
        };
        payload = step(payload)?;
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_or_unbridged_version_is_an_error_not_a_guess() {
        let payload = serde_json::json!({});
        let newer = to_version("unit.event", 3, 2, payload.clone());
        assert!(newer.is_err_and(|reason| reason.contains("newer")));
        let missing = to_version("unit.event", 1, 2, payload.clone());
        assert!(missing.is_err_and(|reason| reason.contains("no upcaster")));
        assert_eq!(to_version("unit.event", 2, 2, payload.clone()), Ok(payload));
    }
}
