//! The top layer: the servers. The emulator's state holds the two providers
//! and what the server itself keeps (clock, consent queue, counters, last
//! requests, faults); the router runs every request through one pipeline;
//! the accept loop owns the connections; the builder and the `Emulator`
//! handle are the public face. The catalogue profiles have their own server
//! ([`profiles`]).

pub(crate) mod builder;
pub(crate) mod counters;
pub(crate) mod emulator;
pub(crate) mod fault;
pub(crate) mod profiles;
pub(crate) mod router;
pub(crate) mod serve;
pub(crate) mod standalone;
pub(crate) mod state;
