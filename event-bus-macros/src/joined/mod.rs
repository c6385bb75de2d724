//! `#[derive(Joined)]`: a handler input naming a join's parts by type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericArgument, PathArguments, Type};

/// Expands `#[derive(Joined)]` on `item`; every misuse is a spanned compile error.
pub(crate) fn expand(item: TokenStream) -> TokenStream {
    match derive(item) {
        Ok(tokens) => tokens,
        Err(error) => error.into_compile_error(),
    }
}

fn derive(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    if let Some(param) = input.generics.params.first() {
        return Err(syn::Error::new(
            param.span(),
            "#[derive(Joined)] cannot be generic: each field names one joined event by its type",
        ));
    }
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => &fields.named,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "#[derive(Joined)] needs named fields, one per joined event: \
                     `struct Ready { payment: PaymentConfirmed, .. }`",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(Joined)] goes on a struct with one named field per joined event",
            ));
        }
    };
    if fields.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Joined)] needs at least one field, one per joined event",
        ));
    }
    // A source joined twice (`A` and `Option<A>` are the same source).
    let mut seen: Vec<(String, &syn::Ident)> = Vec::new();
    for field in fields {
        let Some(name) = &field.ident else { continue };
        let source = source_type(&field.ty);
        if let Some((_, earlier)) = seen.iter().find(|(other, _)| *other == source) {
            return Err(syn::Error::new(
                field.ty.span(),
                format!(
                    "`{source}` is already joined by field `{earlier}`: each event can be a part once"
                ),
            ));
        }
        seen.push((source, name));
    }

    let ident = &input.ident;
    let part = quote!(::event_bus::pipeline::JoinPart);
    let required = fields.iter().map(|field| {
        let ty = &field.ty;
        quote_spanned! {ty.span()=>
            if <#ty as #part>::REQUIRED {
                required.push(<#ty as #part>::SOURCE);
            }
        }
    });
    let sources = fields.iter().map(|field| {
        let ty = &field.ty;
        quote_spanned!(ty.span()=> <#ty as #part>::SOURCE)
    });
    let decoded = fields.iter().map(|field| {
        let (name, ty) = (&field.ident, &field.ty);
        quote_spanned! {ty.span()=>
            #name: <#ty as #part>::decode(entries.get(<#ty as #part>::SOURCE))?
        }
    });
    Ok(quote! {
        #[automatically_derived]
        impl ::event_bus::pipeline::Joined for #ident {
            fn condition() -> ::event_bus::pipeline::Condition {
                let mut required: ::std::vec::Vec<&'static str> = ::std::vec::Vec::new();
                #(#required)*
                ::event_bus::pipeline::Condition::all_of(required)
            }

            fn parts() -> ::std::vec::Vec<&'static str> {
                ::std::vec![#(#sources),*]
            }

            fn decode(
                joined: &::event_bus::pipeline::Message,
            ) -> ::core::result::Result<Self, ::event_bus::pipeline::PipelineError> {
                let entries = ::event_bus::pipeline::__entries(joined)?;
                ::core::result::Result::Ok(#ident { #(#decoded,)* })
            }
        }
    })
}

/// The event type a field joins: the type itself, or the `T` of `Option<T>` / `Erased<T>`,
/// rendered without spaces.
fn source_type(ty: &Type) -> String {
    let inner = match ty {
        Type::Path(path) => path.path.segments.last().and_then(|last| {
            let wrapper = last.ident == "Option" || last.ident == "Erased";
            match (&last.arguments, wrapper) {
                (PathArguments::AngleBracketed(args), true) if args.args.len() == 1 => {
                    match args.args.first() {
                        Some(GenericArgument::Type(inner)) => Some(inner),
                        _ => None,
                    }
                }
                _ => None,
            }
        }),
        _ => None,
    };
    let ty = inner.unwrap_or(ty);
    quote!(#ty).to_string().replace(' ', "")
}
