//! Where a `#[listener]` stands: a free function, or an associated function inside an `impl` block.
//!
//! An attribute macro is not told what surrounds its item, and inside an `impl` block the
//! registration it emits cannot compile (an associated function has no path the generated code can
//! name, and `const _` is not an impl item). So that the user learns the reason instead of rustc's
//! "`const` items in this context need a name", the macro reads the source file that holds the
//! attribute (`proc_macro::Span::local_file`, stable since Rust 1.88) and looks for the function
//! among the `impl` blocks there. When the file cannot be read or parsed (a macro-generated item, a
//! file rustc got from elsewhere) nothing is found and the macro emits the registration as usual.

use std::path::PathBuf;

use syn::{Ident, ImplItem, Item};

/// The `impl` block that holds a `#[listener]` function named `function`, if the source says so.
pub(crate) struct EnclosingImpl {
    /// The implemented type, as written (`Notifier`, `Service<T>`).
    pub(crate) self_ty: String,
}

/// Looks for an associated function named `function` carrying `#[listener]` inside an `impl` block
/// of the file and line where this macro was invoked.
pub(crate) fn enclosing_impl(function: &Ident) -> Option<EnclosingImpl> {
    enclosing_impl_of(function, "listener")
}

/// Like [`enclosing_impl`], for a function carrying the attribute named `attribute`.
pub(crate) fn enclosing_impl_of(function: &Ident, attribute: &str) -> Option<EnclosingImpl> {
    if !proc_macro::is_available() {
        return None;
    }
    let call_site = proc_macro::Span::call_site();
    let path: PathBuf = call_site.local_file()?;
    let source = std::fs::read_to_string(path).ok()?;
    let file = syn::parse_file(&source).ok()?;
    find_in_items(&file.items, function, attribute)
}

fn find_in_items(items: &[Item], function: &Ident, attribute: &str) -> Option<EnclosingImpl> {
    items.iter().find_map(|item| match item {
        Item::Impl(block) => {
            let holds_it = block.items.iter().any(|inner| match inner {
                ImplItem::Fn(method) => {
                    method.sig.ident == *function
                        && method
                            .attrs
                            .iter()
                            .any(|found| is_attribute(found, attribute))
                }
                _ => false,
            });
            holds_it.then(|| EnclosingImpl {
                self_ty: quote::ToTokens::to_token_stream(&block.self_ty)
                    .to_string()
                    .replace(" < ", "<")
                    .replace(" >", ">")
                    .replace(" ,", ","),
            })
        }
        Item::Mod(module) => module
            .content
            .as_ref()
            .and_then(|(_, items)| find_in_items(items, function, attribute)),
        _ => None,
    })
}

/// `#[listener]`, `#[listener(..)]`, `#[event_bus::listener]`, … (for `name` = "listener").
fn is_attribute(attribute: &syn::Attribute, name: &str) -> bool {
    attribute
        .path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == name)
}
