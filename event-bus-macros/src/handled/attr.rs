//! Parsing `#[command(name = "…")]` and `#[query(reply = Type, name = "…")]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{LitStr, Type};

use super::Kind;

/// The options given to the attribute.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<LitStr>,
    /// `reply = Type` (queries only).
    pub(crate) reply: Option<Type>,
    /// `crate = path`: where `event_bus` is.
    pub(crate) krate: Option<syn::Path>,
}

pub(crate) fn parse(kind: Kind, args: TokenStream) -> syn::Result<Options> {
    let valid = match kind {
        Kind::Command => "valid options are `name = \"...\"` and `crate = path::to::event_bus`",
        Kind::Query => {
            "valid options are `reply = Type` (required), `name = \"...\"` and \
             `crate = path::to::event_bus`"
        }
    };
    let attribute = kind.attribute();
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if options.name.is_some() {
                return Err(
                    meta.error(format!("duplicate {attribute} option `name`; give it once"))
                );
            }
            let name: LitStr = meta.value()?.parse()?;
            if name.value().trim().is_empty() {
                return Err(syn::Error::new(name.span(), "the name must not be empty"));
            }
            options.name = Some(name);
            Ok(())
        } else if meta.path.is_ident("reply") && kind == Kind::Query {
            if options.reply.is_some() {
                return Err(meta.error("duplicate #[query] option `reply`; give it once"));
            }
            let reply = meta.value()?.parse().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "expected a type after `reply =`, e.g. `reply = Option<u64>`",
                )
            })?;
            options.reply = Some(reply);
            Ok(())
        } else if meta.path.is_ident("crate") {
            if options.krate.is_some() {
                return Err(meta.error(format!(
                    "duplicate {attribute} option `crate`; give it once"
                )));
            }
            options.krate = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            let option = meta
                .path
                .get_ident()
                .map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
            Err(meta.error(format!("unknown {attribute} option {option}; {valid}")))
        }
    });
    parser.parse2(args)?;
    if kind == Kind::Query && options.reply.is_none() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[query] needs the type its handler answers with: `#[query(reply = Type)]`",
        ));
    }
    Ok(options)
}
