//! Code generation for `#[command]` and `#[query]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Ident;

use super::Kind;
use super::attr::Options;

pub(crate) fn impl_trait(kind: Kind, ident: &Ident, options: &Options) -> TokenStream {
    let krate = match &options.krate {
        Some(path) => quote!(#path),
        None => quote!(::event_bus),
    };
    let name = match &options.name {
        Some(name) => quote!(#name),
        None => {
            let name = ident.to_string();
            quote!(#name)
        }
    };
    match (kind, &options.reply) {
        (Kind::Query, Some(reply)) => quote_spanned! {ident.span()=>
            #[automatically_derived]
            impl #krate::cqrs::Query for #ident {
                const NAME: &'static str = #name;
                type Reply = #reply;

                #[inline]
                fn __handler() -> &'static #krate::__private::HandlerSlot<Self, #reply> {
                    static SLOT: #krate::__private::HandlerSlot<#ident, #reply> =
                        #krate::__private::HandlerSlot::new();
                    &SLOT
                }
            }
        },
        _ => quote_spanned! {ident.span()=>
            #[automatically_derived]
            impl #krate::cqrs::Command for #ident {
                const NAME: &'static str = #name;

                #[inline]
                fn __handler() -> &'static #krate::__private::HandlerSlot<Self, ()> {
                    static SLOT: #krate::__private::HandlerSlot<#ident, ()> =
                        #krate::__private::HandlerSlot::new();
                    &SLOT
                }
            }
        },
    }
}
