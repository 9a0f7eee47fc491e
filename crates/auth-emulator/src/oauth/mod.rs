//! The bottom layer: OAuth 2.0 primitives that know no provider's rules and
//! hold no server state. Request parameters, PKCE, client authentication,
//! scopes, codes and grants, token strings, replies and error bodies, the
//! clock, the endpoint names, the consent queue and what a provider's handler
//! borrows from the server ([`context`]). Nothing here imports the layers
//! above (`providers`, `server`).

pub(crate) mod client_auth;
pub(crate) mod clock;
pub(crate) mod consent;
pub(crate) mod context;
pub(crate) mod endpoint;
pub(crate) mod error_body;
pub(crate) mod grants;
pub(crate) mod params;
pub(crate) mod pkce;
pub(crate) mod reply;
pub(crate) mod request;
pub(crate) mod scopes;
pub(crate) mod token;
