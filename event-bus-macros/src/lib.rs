//! The procedural macros of [`event-bus`](https://docs.rs/event-bus): `#[event]`, `#[listener]`,
//! `#[command]`, `#[query]` and `#[derive(Joined)]`.
//!
//! This crate is thin: it parses the annotated item, checks it (every misuse is a compile error
//! pointing at the offending token, with a hint) and emits an impl. The runtime API lives in the
//! `event-bus` crate, which re-exports these macros; depend on that crate, not on this one.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod event;
mod handled;
mod handler;
mod joined;
pub(crate) mod listener;

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

/// (Implemented in `event-bus-macros`; use it through `event_bus::command`.)
#[proc_macro_attribute]
pub fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    handled::expand(handled::Kind::Command, args.into(), item.into()).into()
}

/// (Implemented in `event-bus-macros`; use it through `event_bus::query`.)
#[proc_macro_attribute]
pub fn query(args: TokenStream, item: TokenStream) -> TokenStream {
    handled::expand(handled::Kind::Query, args.into(), item.into()).into()
}

/// (Implemented in `event-bus-macros`; use it through `event_bus::handler`.)
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}

/// (Implemented in `event-bus-macros`; use it through `event_bus::pipeline::Joined`.)
#[proc_macro_derive(Joined)]
pub fn joined(item: TokenStream) -> TokenStream {
    joined::expand(item.into()).into()
}
