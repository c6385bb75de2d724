//! Code generation for `#[event]`: `impl event_bus::Event`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::Input;
use super::attr::Options;

pub(crate) fn impl_event(input: &Input, options: &Options) -> TokenStream {
    let ident = &input.ident;
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
    let key = options.key.as_ref().map(|key| {
        let member = &key.member;
        quote_spanned! {member.span()=>
            #[inline]
            fn key(&self) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::Some(::std::string::ToString::to_string(&self.#member))
            }
        }
    });
    let version = options.version.as_ref().map(|version| {
        let value: u32 = version.base10_parse().unwrap_or(1);
        quote_spanned! {version.span()=> const VERSION: u32 = #value; }
    });
    // The impl is spanned at the type name, so a payload that is not `Send + Sync + 'static` is
    // reported there.
    quote_spanned! {ident.span()=>
        #[automatically_derived]
        impl #krate::Event for #ident {
            const NAME: &'static str = #name;
            #version

            #[inline]
            fn registry() -> &'static #krate::Registry<Self> {
                static STATE: #krate::__private::RegistryState<#ident> =
                    #krate::__private::RegistryState::new();
                static REGISTRY: #krate::Registry<#ident> = #krate::Registry::__global(&STATE);
                &REGISTRY
            }

            #[inline(always)]
            fn __thread_cache() -> ::core::option::Option<
                &'static ::std::thread::LocalKey<#krate::__private::ThreadCache<Self>>,
            > {
                ::std::thread_local! {
                    static CACHE: #krate::__private::ThreadCache<#ident> =
                        const { #krate::__private::ThreadCache::new() };
                }
                ::core::option::Option::Some(&CACHE)
            }

            #key
        }
    }
}
