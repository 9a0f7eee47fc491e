//! Real OAuth 2.0 providers as data.
//!
//! Each entry of the catalogue says what a client needs to know about one
//! provider and what most catalogues leave out: whether refresh tokens
//! rotate, how long a used one may be replayed, how long one lives, and
//! how the token response departs from RFC 6749. Every entry names the
//! documentation its facts came from and the day they were checked; a fact
//! the documentation does not state is `"unknown"`, and code reads the safe
//! value for it (a refresh token that rotates, with no replay window).
//!
//! This crate is data only: it depends on no HTTP client, so both the
//! client (`auth-oauth2`) and the local emulator (`auth-emulator`) read it.
//!
//! ```
//! use auth_catalogue::{Catalogue, lookup};
//!
//! let strava = lookup("strava").expect("a built-in entry");
//! assert!(strava.refresh_rules().rotating);
//! assert_eq!(strava.scopes.separator, ",");
//! assert!(Catalogue::builtin().len() >= 20);
//! ```
//!
//! An app adds or overrides entries with its own TOML file, in the schema
//! [`ProviderSpec`] documents, through [`Catalogue::with_user_file`].

mod catalogue;
mod fact;
pub mod spec;
mod table;

pub use catalogue::{BUILTIN_SOURCE, BUILTIN_TOML, Catalogue, CatalogueError, lookup};
pub use fact::{Fact, Seconds, Span, format_duration, parse_duration};
pub use spec::{
    AccountFrom, AccountSpec, Category, ClientAuthMethod, ClientSpec, EndpointsSpec, Envelope,
    ErrorFormat, ErrorsSpec, ExpiresIn, IntrospectStyle, MissingPlaceholder, Pkce, ProviderSpec,
    RefreshRules, RefreshSpec, ResponseSpec, ScopesSpec, Status,
};
pub use table::markdown_table;
