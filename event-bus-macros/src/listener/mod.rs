//! `#[listener]`: parse the options and the function, check them, emit the registration.

mod ast;
mod attr;
pub(crate) mod context;
mod expand;

use proc_macro2::TokenStream;

/// Expands `#[listener(args)] fn …`. On error the function is emitted unchanged next to the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = attr::parse(args).and_then(|options| {
        let input = ast::Input::parse(item.clone(), options.durable.is_some())?;
        if let Some(block) = context::enclosing_impl(&input.ident) {
            return Err(inside_impl(&input, &block));
        }
        Ok(expand::register(&input, &options))
    });
    match expanded {
        Ok(registration) => quote::quote! { #item #registration },
        Err(error) => {
            let error = error.into_compile_error();
            quote::quote! { #item #error }
        }
    }
}

/// The error for a `#[listener]` on an associated function: the reason and both ways out.
fn inside_impl(input: &ast::Input, block: &context::EnclosingImpl) -> syn::Error {
    let function = &input.ident;
    let ty = &block.self_ty;
    let payload = quote::ToTokens::to_token_stream(&input.payload).to_string();
    let registration = match (input.is_async, &input.by) {
        (false, _) => format!("{payload}::register({ty}::{function})"),
        (true, ast::PassedBy::Arc) => format!("{payload}::register_async({ty}::{function})"),
        (true, ast::PassedBy::Ref) => format!(
            "{payload}::register_async(|event| async move {{ {ty}::{function}(&event).await }})"
        ),
        (true, ast::PassedBy::Value) => {
            format!("{payload}::durable(\"{function}\", {ty}::{function}).register()")
        }
    };
    syn::Error::new(
        function.span(),
        format!(
            "#[listener] goes on a free function, and `{function}` is an associated function of \
             `{ty}`: the registration the attribute generates cannot name a function inside an \
             `impl` block\n\
             help: move `{function}` out of `impl {ty}` to module level, or remove #[listener] \
             and register it at startup with `{registration}`"
        ),
    )
}
