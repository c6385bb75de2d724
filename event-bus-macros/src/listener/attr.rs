//! Parsing `#[listener(priority = N, name = "…")]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{Expr, LitStr};

/// The options given to `#[listener(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) priority: Option<Expr>,
    pub(crate) name: Option<LitStr>,
    /// `durable`: a durable listener (requests stored by `publish`, run by an executor).
    pub(crate) durable: Option<syn::Path>,
    /// `max_errors = N` (durable listeners only).
    pub(crate) max_errors: Option<Expr>,
    /// `crate = path`: where `event_bus` is, for a renamed or re-exported dependency.
    pub(crate) krate: Option<syn::Path>,
}

const VALID: &str = "valid options are `priority = <i32>`, `name = \"...\"`, \
                     `crate = path::to::event_bus`, and for a durable listener `durable` and \
                     `max_errors = <u32>`";

pub(crate) fn parse(args: TokenStream) -> syn::Result<Options> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("priority") {
            if options.priority.is_some() {
                return Err(meta.error("duplicate #[listener] option `priority`; give it once"));
            }
            options.priority = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("name") {
            if options.name.is_some() {
                return Err(meta.error("duplicate #[listener] option `name`; give it once"));
            }
            let name: LitStr = meta.value()?.parse()?;
            if name.value().trim().is_empty() {
                return Err(syn::Error::new(
                    name.span(),
                    "the listener name must not be empty",
                ));
            }
            options.name = Some(name);
            Ok(())
        } else if meta.path.is_ident("crate") {
            if options.krate.is_some() {
                return Err(meta.error("duplicate #[listener] option `crate`; give it once"));
            }
            options.krate = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("durable") {
            if options.durable.is_some() {
                return Err(meta.error("duplicate #[listener] option `durable`; give it once"));
            }
            options.durable = Some(meta.path.clone());
            Ok(())
        } else if meta.path.is_ident("max_errors") {
            if options.max_errors.is_some() {
                return Err(meta.error("duplicate #[listener] option `max_errors`; give it once"));
            }
            options.max_errors = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            let unknown = meta
                .path
                .get_ident()
                .map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
            Err(meta.error(format!("unknown #[listener] option {unknown}; {VALID}")))
        }
    });
    parser.parse2(args)?;
    if let (Some(_), Some(name)) = (&options.durable, &options.name)
        && name.value().chars().any(char::is_control)
    {
        return Err(syn::Error::new(
            name.span(),
            "a durable listener's name is stored with each request: no control characters",
        ));
    }
    if let (None, Some(max_errors)) = (&options.durable, &options.max_errors) {
        return Err(syn::Error::new_spanned(
            max_errors,
            "`max_errors` is an option of durable listeners: add `durable`, \
             e.g. `#[listener(durable, max_errors = 5)]`",
        ));
    }
    Ok(options)
}
