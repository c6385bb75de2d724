//! Checks on a parsed `#[event]` that produce spanned errors.

use syn::spanned::Spanned;
use syn::{Fields, Member};

use super::ast::{Input, Shape};
use super::attr::Options;

pub(crate) fn check(input: &Input, options: &Options) -> syn::Result<()> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(errors) => errors.combine(error),
        None => errors = Some(error),
    };

    if !input.generics.params.is_empty() {
        push(syn::Error::new(
            input.generics.span(),
            format!(
                "an #[event] payload cannot be generic: each event type owns one static registry; \
                 wrap one concrete instantiation instead, e.g. `#[event] struct MyEvent({}<u32>);`",
                input.ident
            ),
        ));
    }
    if let Some(name) = &options.name
        && name.value().trim().is_empty()
    {
        push(syn::Error::new(
            name.span(),
            "the event name must not be empty, e.g. `name = \"com.example.user.created\"`",
        ));
    }
    if let Some(key) = &options.key {
        match &input.shape {
            Shape::Enum { enum_token } => {
                let mut error = syn::Error::new(
                    key.keyword.span(),
                    "`key = field` is only supported on structs: an enum has no common field",
                );
                error.combine(syn::Error::new(*enum_token, "this is an enum"));
                push(error);
            }
            Shape::Struct(fields) => {
                if let Err(error) = find_field(input, fields, &key.member) {
                    push(error);
                }
            }
        }
    }
    errors.map_or(Ok(()), Err)
}

fn find_field(input: &Input, fields: &Fields, member: &Member) -> syn::Result<()> {
    let found = match member {
        Member::Named(name) => fields
            .iter()
            .any(|field| field.ident.as_ref() == Some(name)),
        Member::Unnamed(index) => {
            matches!(fields, Fields::Unnamed(_)) && (index.index as usize) < fields.len()
        }
    };
    if found {
        return Ok(());
    }
    let available: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(index, field)| match &field.ident {
            Some(ident) => format!("`{ident}`"),
            None => format!("`{index}`"),
        })
        .collect();
    let hint = if available.is_empty() {
        format!("`{}` has no fields", input.ident)
    } else {
        format!("its fields are {}", available.join(", "))
    };
    let shown = match member {
        Member::Named(name) => name.to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    };
    Err(syn::Error::new(
        member.span(),
        format!(
            "`key` names no field of `{}`: there is no field `{shown}`; {hint}",
            input.ident
        ),
    ))
}
