//! What the tool prints: aligned tables for people, JSON for scripts.

use std::time::SystemTime;

use serde_json::Value;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    pub fn is_json(self) -> bool {
        self.json
    }

    /// Rows under `headers` (people), or `document` (scripts).
    pub fn table(self, headers: &[&str], rows: &[Vec<String>], document: Value) {
        if self.json {
            print_json(&document);
            return;
        }
        if rows.is_empty() {
            println!("(none)");
            return;
        }
        let mut widths: Vec<usize> = headers
            .iter()
            .map(|header| header.chars().count())
            .collect();
        for row in rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(headers.to_vec());
        let separators: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        line(separators.iter().map(String::as_str).collect());
        for row in rows {
            line(row.iter().map(String::as_str).collect());
        }
    }

    /// Fields of one record, one per line (people), or `document` (scripts).
    pub fn record(self, fields: &[(&str, String)], document: Value) {
        if self.json {
            print_json(&document);
            return;
        }
        let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, value) in fields {
            println!("{name:<width$}  {value}");
        }
    }

    /// A count.
    pub fn count(self, what: &str, count: usize) {
        if self.json {
            print_json(&serde_json::json!({ "count": count }));
        } else {
            println!("{count} {what}");
        }
    }

    /// The outcome of an action: a sentence (people) or `document` (scripts).
    pub fn done(self, sentence: &str, document: Value) {
        if self.json {
            print_json(&document);
        } else {
            println!("{sentence}");
        }
    }
}

fn print_json(document: &Value) {
    match serde_json::to_string_pretty(document) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("cannot print JSON: {error}"),
    }
}

/// A time as RFC 3339 (UTC, seconds).
pub fn time(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Bytes as text when they are UTF-8, else a note of their length.
pub fn content(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("<{} bytes, not UTF-8>", bytes.len()),
    }
}

/// `text` cut to `max` characters, with an ellipsis.
pub fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
