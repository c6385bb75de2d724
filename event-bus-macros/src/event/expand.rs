//! Code generation for `#[event]`: `impl event_bus::Event`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::Input;
use super::attr::Options;

pub(crate) fn impl_event(input: &Input, options: &Options) -> TokenStream {
    let ident = &input.ident;
    let name = match &options.name {
        Some(name) => quote!(#name),
        None => {
            let name = ident.to_string();
            quote!(#name)
        }
    };
    let key = options.key.as_ref().map(|key| {
        let member = &key.member;
        quote_spanned! {member.span()=>
            #[inline]
            fn key(&self) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::Some(::std::string::ToString::to_string(&self.#member))
            }
        }
    });
    // The impl is spanned at the type name, so a payload that is not `Send + Sync + 'static` is
    // reported there.
    quote_spanned! {ident.span()=>
        #[automatically_derived]
        impl ::event_bus::Event for #ident {
            const NAME: &'static str = #name;

            #[inline]
            fn registry() -> &'static ::event_bus::Registry<Self> {
                static REGISTRY: ::event_bus::Registry<#ident> = ::event_bus::Registry::__global();
                &REGISTRY
            }

            #key
        }
    }
}
