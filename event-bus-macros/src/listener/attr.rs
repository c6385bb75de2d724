//! Parsing `#[listener(priority = N, name = "…")]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{Expr, LitStr};

/// The options given to `#[listener(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) priority: Option<Expr>,
    pub(crate) name: Option<LitStr>,
}

const VALID: &str = "valid options are `priority = <i32>` and `name = \"...\"`";

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
        } else {
            let unknown = meta
                .path
                .get_ident()
                .map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
            Err(meta.error(format!("unknown #[listener] option {unknown}; {VALID}")))
        }
    });
    parser.parse2(args)?;
    Ok(options)
}
