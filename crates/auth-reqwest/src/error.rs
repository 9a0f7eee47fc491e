//! Getting our [`auth_core::Error`] back out of a
//! [`reqwest_middleware::Error`], so an app can act on its class.

/// The token error behind a failed request, if the middleware failed it
/// because no token could be had. `None` for network and HTTP errors.
///
/// ```
/// use auth_reqwest::auth_error;
/// let err = reqwest_middleware::Error::middleware(auth_core::Error::reauthorization_required(
///     None,
///     "invalid_grant",
/// ));
/// assert!(auth_error(&err).is_some_and(auth_core::Error::is_reauthorization_required));
/// ```
pub fn auth_error(err: &reqwest_middleware::Error) -> Option<&auth_core::Error> {
    match err {
        reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<auth_core::Error>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}
