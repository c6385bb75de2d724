//! `#[event]`: parse the options and the item, check them, emit `impl Event`.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;

/// Expands `#[event(args)] item`. On error the item is emitted unchanged next to the errors, so
/// the rest of the program still sees the type and only the real mistake is reported.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = attr::parse(args).and_then(|options| {
        let input = ast::Input::parse(item.clone())?;
        valid::check(&input, &options)?;
        Ok(expand::impl_event(&input, &options))
    });
    match expanded {
        Ok(impl_event) => quote::quote! { #item #impl_event },
        Err(error) => {
            let error = error.into_compile_error();
            quote::quote! { #item #error }
        }
    }
}
