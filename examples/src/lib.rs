//! Runnable examples for event-bus live in this package's `[[example]]` targets.
