//! Code generation for `#[listener]`: an `inventory` entry that registers the function.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::{Input, PassedBy};
use super::attr::Options;

pub(crate) fn register(input: &Input, options: &Options) -> TokenStream {
    let krate = match &options.krate {
        Some(path) => quote!(#path),
        None => quote!(::event_bus),
    };
    let ident = &input.ident;
    let payload = &input.payload;
    let name = match &options.name {
        Some(name) => quote!(#name),
        None => {
            let ident = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #ident))
        }
    };
    let priority = match &options.priority {
        Some(priority) => {
            quote_spanned!(priority.span()=> { const PRIORITY: i32 = #priority; PRIORITY })
        }
        None => quote!(0),
    };
    if options.durable.is_some() {
        return register_durable(input, options, name, &krate);
    }
    // Spanned at the payload type: "`X` is not an event" points at the argument's type.
    let install = match (input.is_async, &input.by) {
        (false, _) => quote_spanned! {payload.span()=>
            #krate::__private::install_sync::<#payload, _, _>(#name, #priority, #ident)
        },
        (true, PassedBy::Arc) => quote_spanned! {payload.span()=>
            #krate::__private::install_async::<#payload, _, _>(#name, #priority, #ident)
        },
        (true, PassedBy::Ref | PassedBy::Value) => quote_spanned! {payload.span()=>
            #krate::__private::install_async::<#payload, _, _>(
                #name,
                #priority,
                |event: ::std::sync::Arc<#payload>| async move { #ident(&*event).await },
            )
        },
    };
    quote! {
        const _: () = {
            #krate::__private::inventory::submit! {
                #krate::__private::StaticListener::new(|| { #install; })
            }
        };
    }
}

/// A durable `#[listener]`: installed as `E::durable(name, f)` with its options.
fn register_durable(
    input: &Input,
    options: &Options,
    name: TokenStream,
    krate: &TokenStream,
) -> TokenStream {
    let ident = &input.ident;
    let payload = &input.payload;
    let priority = match &options.priority {
        Some(priority) => quote_spanned!(priority.span()=> ::core::option::Option::Some({
            const PRIORITY: u8 = #priority;
            PRIORITY
        })),
        None => quote!(::core::option::Option::None),
    };
    let max_errors = match &options.max_errors {
        Some(max) => quote_spanned!(max.span()=> ::core::option::Option::Some({
            const MAX_ERRORS: u32 = #max;
            MAX_ERRORS
        })),
        None => quote!(::core::option::Option::None),
    };
    let install = quote_spanned! {payload.span()=>
        #krate::__private::install_durable::<#payload, _, _>(#name, #priority, #max_errors, #ident)
    };
    quote! {
        const _: () = {
            #krate::__private::inventory::submit! {
                #krate::__private::StaticListener::new(|| { #install; })
            }
        };
    }
}
