//! Registered clients and client authentication at the token and revoke
//! endpoints. Fitbit is strict about the method (server apps: Basic only;
//! public apps: `client_id` in the body, no secret); Google accepts
//! `client_secret_basic` or `client_secret_post`.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::oauth::params::Params;

/// A registered client, as the server knows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) id: String,
    /// `None` for a public client (Fitbit "Client" app type).
    pub(crate) secret: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("confidential", &self.secret.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Whether `uri` is registered, compared exactly (no normalization).
    pub(crate) fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }
}

/// Which server's client-authentication rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rules {
    Fitbit,
    Google,
}

/// Why client authentication failed (a message for the error body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuthFailure(pub(crate) &'static str);

/// Authenticates the client of a token or revoke request.
pub(crate) fn authenticate<'a>(
    clients: &'a HashMap<String, Client>,
    authorization: Option<&str>,
    params: &Params,
    rules: Rules,
) -> Result<&'a Client, AuthFailure> {
    let body_id = params.get("client_id");
    let body_secret = params.raw("client_secret");
    if let Some(header) = authorization {
        let (id, secret) = parse_basic(header).ok_or(AuthFailure(
            "Invalid authorization header format. The header was not recognized to be a valid header for any of known implementations.",
        ))?;
        let client = clients.get(&id).ok_or(AuthFailure(
            "Invalid authorization header. Client id invalid.",
        ))?;
        let Some(expected) = client.secret.as_deref() else {
            return Err(AuthFailure(
                "A public client must not send an Authorization header; send client_id in the body.",
            ));
        };
        if secret != expected {
            return Err(AuthFailure(
                "Invalid authorization header. Client secret invalid.",
            ));
        }
        if body_id.is_some_and(|b| b != id) {
            return Err(AuthFailure(
                "The client_id in the body does not match the Authorization header.",
            ));
        }
        match (rules, body_secret) {
            (_, None) => {}
            (Rules::Fitbit, Some(_)) => {
                return Err(AuthFailure(
                    "A server application must authenticate with the Authorization header only; client_secret is not accepted in the body.",
                ));
            }
            (Rules::Google, Some(s)) if s == expected => {}
            (Rules::Google, Some(_)) => return Err(AuthFailure("Client secret invalid.")),
        }
        return Ok(client);
    }
    let id = body_id.ok_or(AuthFailure(
        "Missing client authentication: send an Authorization header, or a client_id in the body in case of a public client.",
    ))?;
    let client = clients.get(id).ok_or(AuthFailure("Client id invalid."))?;
    match (rules, client.secret.as_deref(), body_secret) {
        (_, None, None) => Ok(client),
        (_, None, Some(_)) => Err(AuthFailure("A public client has no client_secret.")),
        (Rules::Fitbit, Some(_), _) => Err(AuthFailure(
            "A server application must authenticate with Authorization: Basic; client_id and client_secret in the body are not accepted.",
        )),
        (Rules::Google, Some(expected), Some(secret)) if secret == expected => Ok(client),
        (Rules::Google, Some(_), Some(_)) => Err(AuthFailure("Client secret invalid.")),
        (Rules::Google, Some(_), None) => Err(AuthFailure("Missing client_secret.")),
    }
}

/// The client a request claims to be, without checking it (for rate-limit
/// keys).
pub(crate) fn claimed_client_id(authorization: Option<&str>, params: &Params) -> Option<String> {
    authorization
        .and_then(parse_basic)
        .map(|(id, _)| id)
        .or_else(|| params.get("client_id").map(str::to_owned))
}

/// Decodes `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 2.3.1).
/// Plain `id:secret` decodes the same when neither needs encoding.
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    let bytes = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// `application/x-www-form-urlencoded` decoding of one value.
fn form_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    fn registry() -> HashMap<String, Client> {
        let mut map = HashMap::new();
        for (id, secret) in [("SERVER", Some("s3cret")), ("PUBLIC", None)] {
            map.insert(
                id.to_owned(),
                Client {
                    id: id.to_owned(),
                    secret: secret.map(str::to_owned),
                    redirect_uris: vec![],
                },
            );
        }
        map
    }

    #[test]
    fn basic_is_form_decoded() {
        assert_eq!(
            parse_basic(&basic("a%3Ab:p+w%25")),
            Some(("a:b".to_owned(), "p w%".to_owned()))
        );
        assert_eq!(
            parse_basic(&basic("id:secret")),
            Some(("id".to_owned(), "secret".to_owned()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic(&basic("no-colon")), None);
    }

    #[test]
    fn fitbit_server_app_needs_basic_and_no_body_secret() {
        let clients = registry();
        let none = Params::default();
        let ok = authenticate(
            &clients,
            Some(&basic("SERVER:s3cret")),
            &none,
            Rules::Fitbit,
        );
        assert_eq!(ok.map(|c| c.id.as_str()), Ok("SERVER"));
        let with_body_secret = Params::parse("client_secret=s3cret").unwrap();
        assert!(
            authenticate(
                &clients,
                Some(&basic("SERVER:s3cret")),
                &with_body_secret,
                Rules::Fitbit
            )
            .is_err()
        );
        let post = Params::parse("client_id=SERVER&client_secret=s3cret").unwrap();
        assert!(authenticate(&clients, None, &post, Rules::Fitbit).is_err());
        assert!(authenticate(&clients, None, &post, Rules::Google).is_ok());
        assert!(
            authenticate(&clients, Some(&basic("SERVER:wrong")), &none, Rules::Fitbit).is_err()
        );
    }

    #[test]
    fn public_app_sends_client_id_only() {
        let clients = registry();
        let body = Params::parse("client_id=PUBLIC").unwrap();
        assert!(authenticate(&clients, None, &body, Rules::Fitbit).is_ok());
        let with_secret = Params::parse("client_id=PUBLIC&client_secret=x").unwrap();
        assert!(authenticate(&clients, None, &with_secret, Rules::Fitbit).is_err());
        assert!(
            authenticate(
                &clients,
                Some(&basic("PUBLIC:")),
                &Params::default(),
                Rules::Fitbit
            )
            .is_err()
        );
    }
}
