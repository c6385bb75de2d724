//! `#[command]` and `#[query(reply = T)]`: message types with exactly one handler. Parse the
//! options and the item, check them, emit `impl Command` / `impl Query`.

mod attr;
mod expand;

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{Generics, Ident, Item};

/// Which trait the attribute implements.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Command,
    Query,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Kind::Command => "#[command]",
            Kind::Query => "#[query]",
        }
    }
}

/// Expands `#[command(args)] item` or `#[query(args)] item`. On error the item is emitted
/// unchanged next to the errors.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = attr::parse(kind, args).and_then(|options| {
        let (ident, generics) = parse_item(kind, item.clone())?;
        if !generics.params.is_empty() {
            return Err(syn::Error::new(
                generics.span(),
                format!(
                    "a {} type cannot be generic: each one owns one static handler slot; \
                     wrap one concrete instantiation instead",
                    kind.attribute()
                ),
            ));
        }
        Ok(expand::impl_trait(kind, &ident, &options))
    });
    match expanded {
        Ok(implementation) => quote::quote! { #item #implementation },
        Err(error) => {
            let error = error.into_compile_error();
            quote::quote! { #item #error }
        }
    }
}

fn parse_item(kind: Kind, item: TokenStream) -> syn::Result<(Ident, Generics)> {
    let item: Item = syn::parse2(item)?;
    match item {
        Item::Struct(item) => Ok((item.ident, item.generics)),
        Item::Enum(item) => Ok((item.ident, item.generics)),
        Item::Fn(item) => Err(syn::Error::new(
            item.sig.fn_token.span,
            format!(
                "{} goes on the message type (a struct or an enum), not on a function; \
                 register the function as its handler with `{}`",
                kind.attribute(),
                match kind {
                    Kind::Command => "MyCommand::handle_with(function)",
                    Kind::Query => "MyQuery::answer_with(function)",
                }
            ),
        )),
        other => Err(syn::Error::new(
            other.span(),
            format!(
                "{} can only be applied to a struct or an enum",
                kind.attribute()
            ),
        )),
    }
}
