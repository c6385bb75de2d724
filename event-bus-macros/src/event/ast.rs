//! The parsed model of the item under `#[event]`.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Fields, Generics, Ident, Item};

/// A struct or enum that `#[event]` can implement `Event` for.
pub(crate) struct Input {
    pub(crate) ident: Ident,
    pub(crate) generics: Generics,
    pub(crate) shape: Shape,
}

pub(crate) enum Shape {
    Struct(Fields),
    Enum { enum_token: Span },
}

impl Input {
    pub(crate) fn parse(item: TokenStream) -> syn::Result<Self> {
        let item: Item = syn::parse2(item)?;
        match item {
            Item::Struct(item) => Ok(Input {
                ident: item.ident,
                generics: item.generics,
                shape: Shape::Struct(item.fields),
            }),
            Item::Enum(item) => Ok(Input {
                ident: item.ident,
                generics: item.generics,
                shape: Shape::Enum {
                    enum_token: item.enum_token.span,
                },
            }),
            Item::Union(item) => Err(syn::Error::new(
                item.union_token.span,
                "#[event] cannot be applied to a union; use a struct or an enum for the payload",
            )),
            Item::Fn(item) => Err(syn::Error::new(
                item.sig.fn_token.span,
                "#[event] goes on a payload struct or enum, not on a function; \
                 to make this function handle an event, use #[listener]",
            )),
            other => Err(syn::Error::new(
                other.span(),
                "#[event] can only be applied to a struct or an enum",
            )),
        }
    }
}
