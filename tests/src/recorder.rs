//! A `tracing` subscriber that records events and spans, for assertions.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

/// One captured `tracing` event: its level and its fields rendered as `name=value`.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The event's level.
    pub level: Level,
    /// Its fields, `name=value`.
    pub fields: Vec<String>,
}

/// One span created: its name and its fields rendered as `name=value`.
#[derive(Debug, Clone)]
pub struct CapturedSpan {
    /// The span's name.
    pub name: &'static str,
    /// Its fields, `name=value`.
    pub fields: Vec<String>,
}

impl CapturedSpan {
    /// Whether a field renders as `field` (`name=value`).
    pub fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }
}

/// A minimal subscriber that records events and the spans created (not their entries and exits).
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Captured>>>, Arc<Mutex<Vec<CapturedSpan>>>);

struct FieldsVisitor<'a>(&'a mut Vec<String>);

impl Visit for FieldsVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push(format!("{}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={}", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut fields = Vec::new();
        attributes.record(&mut FieldsVisitor(&mut fields));
        let mut spans = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        spans.push(CapturedSpan {
            name: attributes.metadata().name(),
            fields,
        });
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut FieldsVisitor(&mut fields));
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Captured {
                level: *event.metadata().level(),
                fields,
            });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    /// The spans created so far.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What was recorded so far.
    pub fn captured(&self) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Captured {
    /// Whether a field renders as `field` (`name=value`).
    pub fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }
}
