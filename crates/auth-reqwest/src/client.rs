//! A reqwest client set up for tokens: redirects followed only within one
//! origin, so a redirect elsewhere comes back to the caller instead of being
//! followed (with or without the token). It must never follow a redirect
//! that changes scheme, host or port.

use reqwest::redirect::Policy;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

use crate::bearer::BearerAuth;

/// How many same-origin redirects [`redirect_policy`] follows.
pub const MAX_REDIRECTS: usize = 10;

/// A redirect policy that follows at most [`MAX_REDIRECTS`] redirects that
/// keep the scheme, host and port, and stops at any other, returning the
/// 3xx response to the caller.
pub fn redirect_policy() -> Policy {
    Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .last()
            .is_some_and(|previous| previous.origin() == attempt.url().origin());
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// The reqwest client builder this crate recommends: rustls, and the
/// same-origin [`redirect_policy`].
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(redirect_policy())
}

/// A client with `auth` as its only middleware, over a
/// [`reqwest_builder`] client.
///
/// # Errors
///
/// reqwest's, when its TLS backend cannot be set up.
pub fn client(auth: BearerAuth) -> reqwest::Result<ClientWithMiddleware> {
    Ok(ClientBuilder::new(reqwest_builder().build()?)
        .with(auth)
        .build())
}
