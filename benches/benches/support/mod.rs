//! Shared pieces of the benchmarks: the alternatives we compare against.

pub mod any_bus;
pub mod many_types;
