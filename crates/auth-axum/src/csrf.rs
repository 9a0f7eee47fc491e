//! The CSRF token of the session: a random value the page puts in each of
//! its forms, checked in constant time on every POST.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;
use tower_sessions::Session;

const KEY: &str = "token_keeper.csrf";

/// The session's CSRF token, made on first use.
pub(crate) async fn token(session: &Session) -> Result<String, tower_sessions::session::Error> {
    if let Some(token) = session.get::<String>(KEY).await? {
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    session.insert(KEY, &token).await?;
    Ok(token)
}

/// Whether `given` is the session's CSRF token. A session without one
/// matches nothing.
pub(crate) async fn check(
    session: &Session,
    given: &str,
) -> Result<bool, tower_sessions::session::Error> {
    let Some(expected) = session.get::<String>(KEY).await? else {
        return Ok(false);
    };
    Ok(bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
}
