//! `#[listener]`: parse the options and the function, check them, emit the registration.

mod ast;
mod attr;
mod expand;

use proc_macro2::TokenStream;

/// Expands `#[listener(args)] fn …`. On error the function is emitted unchanged next to the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = attr::parse(args).and_then(|options| {
        let input = ast::Input::parse(item.clone())?;
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
