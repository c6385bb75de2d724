//! `trigger`: synchronous dispatch on the caller's thread, with failure reporting.
//!
//! Three listeners run in priority order; one returns an error and one panics. Neither stops the
//! others, and the `Report` says who failed and why. Run: `cargo run --example trigger`.

use event_bus::prelude::*;

#[event(name = "com.example.invoice.issued", key = number)]
#[derive(Debug)]
struct InvoiceIssued {
    number: u32,
    cents: u64,
}

fn archive(invoice: &InvoiceIssued) {
    if invoice.cents > 100_000 {
        panic!(
            "archive cannot store invoices over 1000.00 (got {})",
            invoice.cents
        );
    }
    println!("archive: stored invoice {}", invoice.number);
}

fn main() {
    // Keep the demo's output readable: the panic is reported in the Report below.
    std::panic::set_hook(Box::new(|_| {}));

    InvoiceIssued::listener()
        .name("ledger")
        .priority(10)
        .register(|invoice: &InvoiceIssued| {
            println!(
                "ledger: booked {} cents for invoice {}",
                invoice.cents, invoice.number
            );
        });
    InvoiceIssued::listener().name("mailer").register(
        |invoice: &InvoiceIssued| -> Result<(), String> {
            Err(format!("SMTP relay refused invoice {}", invoice.number))
        },
    );
    InvoiceIssued::listener()
        .name("archive")
        .priority(-10)
        .register(archive);

    for (number, cents) in [(1, 4_200), (2, 250_000)] {
        let report = InvoiceIssued { number, cents }.trigger();
        println!("report: {report}");
        for failure in report.failures() {
            println!("  failed: {} -> {}", failure.listener(), failure.cause());
        }
    }
}
