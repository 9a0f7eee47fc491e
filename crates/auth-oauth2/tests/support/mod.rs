//! Support code shared by the integration tests.
//!
//! Every test binary compiles this module on its own and uses only part of it.
#![allow(dead_code, unreachable_pub)]

pub mod mock;
