//! The middle layer: each provider's behaviour, with its own state behind a
//! small type. [`fitbit::Fitbit`] and [`google::Google`] are the two
//! authorization servers; Google's device logins ([`device`]), the resource
//! servers ([`resource`]) and Fitbit's quota ([`rate_limit`]) are parts they
//! own; [`catalogue`] plays any catalogue entry. Providers use the OAuth
//! primitives below and never the server above: it lends them the clock,
//! the consent queue and a place to report events for one call
//! ([`Cx`](crate::oauth::context::Cx)).

pub(crate) mod catalogue;
pub(crate) mod device;
pub(crate) mod fitbit;
pub(crate) mod google;
pub(crate) mod rate_limit;
pub(crate) mod resource;
