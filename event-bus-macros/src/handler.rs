//! `#[handler]`: registers a free `async fn` as the one handler of its argument's command or
//! query type, before the first `send` or `ask`, from any module.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::{FnArg, Item, Type};

const SHAPE: &str = "a #[handler] is an `async fn` taking the command or query by value: \
                     `async fn charge(command: Charge) -> Result<(), Error>`";

/// Expands `#[handler] async fn …`. On error the function is emitted unchanged next to the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = parse(args, item.clone());
    match expanded {
        Ok(registration) => quote::quote! { #item #registration },
        Err(error) => {
            let error = error.into_compile_error();
            quote::quote! { #item #error }
        }
    }
}

fn parse(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    // One option: `crate = path` (a renamed or re-exported `event_bus`).
    let mut krate: Option<syn::Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") && krate.is_none() {
            krate = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error(
                "#[handler] takes one option, `crate = path::to::event_bus`; the argument's type \
                 selects the command or query",
            ))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    let krate = match &krate {
        Some(path) => quote::quote!(#path),
        None => quote::quote!(::event_bus),
    };
    let item: Item = syn::parse2(item)?;
    let Item::Fn(function) = item else {
        return Err(syn::Error::new(
            item.span(),
            "#[handler] goes on a free `async fn`; to register a closure, call \
             `MyCommand::handle_with(closure)` or `MyQuery::answer_with(closure)` at start-up",
        ));
    };
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            format!("this #[handler] is not async; {SHAPE}"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a #[handler] function cannot be generic: its argument type selects what it handles",
        ));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        return Err(syn::Error::new(
            receiver.span(),
            format!("a #[handler] cannot be a method; {SHAPE}"),
        ));
    }
    if let Some(block) = crate::listener::context::enclosing_impl_of(&sig.ident, "handler") {
        let function = &sig.ident;
        let ty = &block.self_ty;
        return Err(syn::Error::new(
            function.span(),
            format!(
                "#[handler] goes on a free function, and `{function}` is an associated function \
                 of `{ty}`: the registration the attribute generates cannot name it\n\
                 help: move `{function}` out of `impl {ty}` to module level, or remove #[handler] \
                 and register it at start-up with `MyCommand::handle_with({ty}::{function})`"
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    let Some(first) = inputs.next() else {
        return Err(syn::Error::new(
            sig.paren_token.span.join(),
            format!("this #[handler] takes no argument; {SHAPE}"),
        ));
    };
    if let Some(second) = inputs.next() {
        return Err(syn::Error::new(
            second.span(),
            format!("this #[handler] takes more than one argument; {SHAPE}"),
        ));
    }
    let ty: &Type = match first {
        FnArg::Typed(typed) => &typed.ty,
        FnArg::Receiver(receiver) => {
            return Err(syn::Error::new(
                receiver.span(),
                format!("a #[handler] cannot be a method; {SHAPE}"),
            ));
        }
    };
    if let Type::Reference(reference) = ty {
        return Err(syn::Error::new(
            reference.span(),
            format!("a #[handler] takes its message by value, not by reference; {SHAPE}"),
        ));
    }
    let ident = &sig.ident;
    let name = ident.to_string();
    // Spanned at the argument's type: "`X` is not a command or query" points there.
    Ok(quote_spanned! {ty.span()=>
        const _: () = {
            #krate::__private::inventory::submit! {
                #krate::__private::StaticListener::new(|| {
                    #krate::__private::install_handler::<#ty, _, _>(
                        ::core::concat!(::core::module_path!(), "::", #name),
                        #ident,
                    );
                })
            }
        };
    })
}
