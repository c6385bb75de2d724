//! Parsing `#[event(name = "…", key = field)]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{LitStr, Member};

/// The options given to `#[event(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<LitStr>,
    pub(crate) key: Option<Key>,
    /// `crate = path`: where `event_bus` is, for a renamed or re-exported dependency.
    pub(crate) krate: Option<syn::Path>,
    /// `version = N`: the payload's schema version (1 when absent).
    pub(crate) version: Option<syn::LitInt>,
}

/// `key = field`, with the span of the `key` keyword for errors about the option as a whole.
pub(crate) struct Key {
    pub(crate) keyword: syn::Path,
    pub(crate) member: Member,
}

const VALID: &str = "valid options are `name = \"...\"`, `key = field`, `version = N` and \
                     `crate = path::to::event_bus`";

pub(crate) fn parse(args: TokenStream) -> syn::Result<Options> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if options.name.is_some() {
                return Err(meta.error("duplicate #[event] option `name`; give it once"));
            }
            options.name = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("key") {
            if options.key.is_some() {
                return Err(meta.error("duplicate #[event] option `key`; give it once"));
            }
            let keyword = meta.path.clone();
            let member = meta.value()?.parse().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "expected a field name after `key =`, e.g. `key = order_id`",
                )
            })?;
            options.key = Some(Key { keyword, member });
            Ok(())
        } else if meta.path.is_ident("version") {
            if options.version.is_some() {
                return Err(meta.error("duplicate #[event] option `version`; give it once"));
            }
            let version: syn::LitInt = meta.value()?.parse().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "expected a number after `version =`, e.g. `version = 2`",
                )
            })?;
            match version.base10_parse::<u32>() {
                Ok(n) if n >= 1 => {}
                _ => {
                    return Err(syn::Error::new(
                        version.span(),
                        "an event version is a whole number from 1 (the default) up",
                    ));
                }
            }
            options.version = Some(version);
            Ok(())
        } else if meta.path.is_ident("crate") {
            if options.krate.is_some() {
                return Err(meta.error("duplicate #[event] option `crate`; give it once"));
            }
            let path = meta.value()?.parse().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "expected a path after `crate =`, e.g. `crate = my_events::event_bus`",
                )
            })?;
            options.krate = Some(path);
            Ok(())
        } else {
            let unknown = meta
                .path
                .get_ident()
                .map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
            Err(meta.error(format!("unknown #[event] option {unknown}; {VALID}")))
        }
    });
    parser.parse2(args)?;
    Ok(options)
}
