//! The procedural macros of [`event-bus`](https://docs.rs/event-bus): `#[event]` and `#[listener]`.
//!
//! This crate is thin: it parses the annotated item, checks it (every misuse is a compile error
//! pointing at the offending token, with a hint) and emits an impl. The runtime API lives in the
//! `event-bus` crate, which re-exports these macros; depend on that crate, not on this one.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod event;
mod joined;
mod listener;

use proc_macro::TokenStream;

/// (Implemented in `event-bus-macros`; use it through `event_bus::event`.)
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    event::expand(args.into(), item.into()).into()
}

/// (Implemented in `event-bus-macros`; use it through `event_bus::listener`.)
#[proc_macro_attribute]
pub fn listener(args: TokenStream, item: TokenStream) -> TokenStream {
    listener::expand(args.into(), item.into()).into()
}

/// (Implemented in `event-bus-macros`; use it through `event_bus::pipeline::Joined`.)
#[proc_macro_derive(Joined)]
pub fn joined(item: TokenStream) -> TokenStream {
    joined::expand(item.into()).into()
}
