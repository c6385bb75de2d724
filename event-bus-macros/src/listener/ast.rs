//! The parsed and checked model of a `#[listener]` function.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, Item, PathArguments, Type};

/// A free function that can be registered as a listener.
pub(crate) struct Input {
    pub(crate) ident: Ident,
    pub(crate) is_async: bool,
    /// The event type, from `&Payload` or `Arc<Payload>`.
    pub(crate) payload: Type,
    pub(crate) by: PassedBy,
}

/// How the function takes its payload.
pub(crate) enum PassedBy {
    Ref,
    Arc,
    /// By value: a durable listener (each run decodes its own copy of the stored event).
    Value,
}

const SHAPE: &str = "a #[listener] takes exactly one argument, the event payload: \
                     `fn on_event(event: &MyEvent)` or `async fn on_event(event: Arc<MyEvent>)`";

impl Input {
    pub(crate) fn parse(item: TokenStream, durable: bool) -> syn::Result<Self> {
        let item: Item = syn::parse2(item)?;
        let Item::Fn(function) = item else {
            return Err(syn::Error::new(
                item.span(),
                "#[listener] goes on a free `fn` or `async fn`; \
                 for a type implementing `Listener`, call `MyEvent::register_listener(value)`",
            ));
        };
        let sig = &function.sig;
        if !sig.generics.params.is_empty() {
            return Err(syn::Error::new(
                sig.generics.span(),
                "a #[listener] function cannot be generic: its argument type selects the event",
            ));
        }
        let mut inputs = sig.inputs.iter();
        let first = match inputs.next() {
            Some(first) => first,
            None => {
                return Err(syn::Error::new(
                    sig.paren_token.span.join(),
                    format!("this #[listener] takes no argument; {SHAPE}"),
                ));
            }
        };
        if let Some(second) = inputs.next() {
            return Err(syn::Error::new(
                second.span(),
                format!("this #[listener] takes more than one argument; {SHAPE}"),
            ));
        }
        let ty = match first {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    "#[listener] goes on a free function, not a method; \
                     implement `Listener<MyEvent>` for the type and register a value of it instead",
                ));
            }
            FnArg::Typed(pat) => &*pat.ty,
        };
        let is_async = sig.asyncness.is_some();
        if durable {
            if !is_async {
                return Err(syn::Error::new(
                    sig.fn_token.span,
                    "a durable #[listener] is an `async fn` taking the event by value: \
                     `async fn send_mail(event: MyEvent) -> Result<(), Error>`",
                ));
            }
            let is_arc = matches!(ty, Type::Path(path)
                if path.path.segments.last().is_some_and(|last| last.ident == "Arc"));
            if matches!(ty, Type::Reference(_)) || is_arc {
                return Err(syn::Error::new(
                    ty.span(),
                    "a durable #[listener] takes the event by value (each run decodes its own \
                     copy of the stored event): write `event: MyEvent`",
                ));
            }
            return Ok(Input {
                ident: sig.ident.clone(),
                is_async,
                payload: ty.clone(),
                by: PassedBy::Value,
            });
        }
        let (payload, by) = payload_of(ty, is_async)?;
        Ok(Input {
            ident: sig.ident.clone(),
            is_async,
            payload,
            by,
        })
    }
}

/// `&T` → `(T, Ref)`; for an `async fn`, also `Arc<T>` → `(T, Arc)`.
fn payload_of(ty: &Type, is_async: bool) -> syn::Result<(Type, PassedBy)> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => {
            Ok(((*reference.elem).clone(), PassedBy::Ref))
        }
        Type::Reference(reference) => Err(syn::Error::new(
            reference.mutability.span(),
            "a listener gets the payload by shared reference: write `&MyEvent`, not `&mut MyEvent`",
        )),
        Type::Path(path) if path.qself.is_none() => {
            let arc_inner = path.path.segments.last().and_then(|last| {
                let PathArguments::AngleBracketed(args) = &last.arguments else {
                    return None;
                };
                match (last.ident == "Arc", args.args.len(), args.args.first()) {
                    (true, 1, Some(GenericArgument::Type(inner))) => Some(inner.clone()),
                    _ => None,
                }
            });
            match (arc_inner, is_async) {
                (Some(inner), true) => Ok((inner, PassedBy::Arc)),
                (Some(_), false) => Err(syn::Error::new(
                    ty.span(),
                    "a synchronous #[listener] takes `&MyEvent`; \
                     `Arc<MyEvent>` is for an `async fn` listener",
                )),
                (None, _) => Err(by_value_error(ty, is_async)),
            }
        }
        _ => Err(by_value_error(ty, is_async)),
    }
}

fn by_value_error(ty: &Type, is_async: bool) -> syn::Error {
    let hint = if is_async {
        "take `&MyEvent` or `Arc<MyEvent>`"
    } else {
        "take `&MyEvent`"
    };
    syn::Error::new(
        ty.span(),
        format!(
            "a #[listener] cannot take the payload by value: every listener shares one payload; {hint}"
        ),
    )
}
