//! 1,000 distinct event types, each with one listener in its global registry (and in an `AnyBus`),
//! to measure whether the number of event types in a program changes the cost of a trigger.

use event_bus::Event;

use super::any_bus::AnyBus;

macro_rules! ten_types {
    () => {
        use event_bus::prelude::*;

        #[event]
        pub struct T0;
        #[event]
        pub struct T1;
        #[event]
        pub struct T2;
        #[event]
        pub struct T3;
        #[event]
        pub struct T4;
        #[event]
        pub struct T5;
        #[event]
        pub struct T6;
        #[event]
        pub struct T7;
        #[event]
        pub struct T8;
        #[event]
        pub struct T9;

        pub fn register(bus: &crate::support::any_bus::AnyBus) {
            ten_types!(@each bus, T0 T1 T2 T3 T4 T5 T6 T7 T8 T9);
        }
    };
    (@each $bus:ident, $($t:ident)*) => {
        $(
            $t::register(|e: &$t| {
                std::hint::black_box(e);
            });
            $bus.register(|e: &$t| {
                std::hint::black_box(e);
            });
        )*
    };
}

macro_rules! ten_modules {
    ($inner:ident) => {
        pub mod m0 {
            $inner!();
        }
        pub mod m1 {
            $inner!();
        }
        pub mod m2 {
            $inner!();
        }
        pub mod m3 {
            $inner!();
        }
        pub mod m4 {
            $inner!();
        }
        pub mod m5 {
            $inner!();
        }
        pub mod m6 {
            $inner!();
        }
        pub mod m7 {
            $inner!();
        }
        pub mod m8 {
            $inner!();
        }
        pub mod m9 {
            $inner!();
        }

        pub fn register(bus: &crate::support::any_bus::AnyBus) {
            m0::register(bus);
            m1::register(bus);
            m2::register(bus);
            m3::register(bus);
            m4::register(bus);
            m5::register(bus);
            m6::register(bus);
            m7::register(bus);
            m8::register(bus);
            m9::register(bus);
        }
    };
}

macro_rules! hundred_types {
    () => {
        ten_modules!(ten_types);
    };
}

ten_modules!(hundred_types);

/// Registers one listener for each of the 1,000 types, globally and in `bus`.
pub fn register_all(bus: &AnyBus) {
    register(bus);
}

/// How many types `register_all` registers.
pub const COUNT: usize = 1_000;

#[allow(dead_code)]
fn _types_are_events() -> &'static str {
    m9::m9::T9::NAME
}
