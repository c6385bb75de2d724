//! Compile-fail tests: every misuse of the macros and the typed API is a compile error pointing at
//! the offending token, with a hint. The expected messages are pinned in `tests/ui/*.stderr`; after
//! an intended change, regenerate them with `TRYBUILD=overwrite cargo test -p event-bus-tests --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
