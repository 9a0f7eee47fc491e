//! The authorization-code flow's two halves: the request that sends the user
//! to the provider ([`AuthorizeRequest`] → [`PendingAuthorization`]) and the
//! redirect that brings them back ([`Callback`]).
//!
//! A [`PendingAuthorization`] is serializable so a web app can park it in the
//! user's session between the redirect and the callback. It holds the state
//! and the PKCE verifier, so its `Debug` hides both and its serialized form
//! belongs only in server-side or encrypted session storage.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use url::Url;

use crate::error::{Error, Result};
use crate::id::{AccountId, ProviderId};

const REDACTED: &str = "[redacted]";

/// What the app asks for when it starts an authorization.
///
/// ```
/// use auth_core::{AccountId, AuthorizeRequest};
/// let req = AuthorizeRequest::new()
///     .account(AccountId::new("alice").unwrap())
///     .scopes(["activity", "sleep"])
///     .prompt("consent");
/// assert_eq!(req.scopes, ["activity", "sleep"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizeRequest {
    /// The account the resulting token is stored under. When `None`, the
    /// provider derives it from the token (for example Fitbit's `user_id`).
    pub account: Option<AccountId>,
    /// Scopes to request; empty means the provider's default scopes.
    pub scopes: Vec<String>,
    /// A redirect URI other than the provider's configured one. It must be
    /// registered with the provider exactly as written.
    pub redirect_uri: Option<String>,
    /// The `prompt` parameter, for example `consent` or `login consent`.
    pub prompt: Option<String>,
    /// The `state` to send; a random one is generated when `None`.
    pub state: Option<String>,
    /// Further query parameters for the authorize URL.
    pub extra_params: Vec<(String, String)>,
}

impl AuthorizeRequest {
    /// An empty request: default scopes, the configured redirect URI.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores the token under this account.
    #[must_use]
    pub fn account(mut self, account: AccountId) -> Self {
        self.account = Some(account);
        self
    }

    /// Requests these scopes.
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Uses this redirect URI.
    #[must_use]
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Sets the `prompt` parameter.
    #[must_use]
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Uses this `state` instead of a random one.
    #[must_use]
    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }

    /// Adds a query parameter to the authorize URL.
    #[must_use]
    pub fn extra_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }
}

/// An authorization in progress: the URL to send the user to, and what the
/// callback must match.
#[derive(Clone)]
pub struct PendingAuthorization {
    /// The provider that issued the URL.
    pub provider: ProviderId,
    /// The account to store the token under, if the app chose one.
    pub account: Option<AccountId>,
    /// Where to send the user.
    pub authorize_url: Url,
    /// The redirect URI sent to the provider, if any.
    pub redirect_uri: Option<String>,
    /// The scopes requested.
    pub scopes: Vec<String>,
    /// When the authorization started.
    pub created_at: SystemTime,
    /// Provider-specific values the callback needs (never secrets).
    pub params: BTreeMap<String, String>,
    state: SecretString,
    pkce_verifier: Option<SecretString>,
}

impl PendingAuthorization {
    /// Assembles a pending authorization. Providers call this from
    /// [`TokenProvider::authorize`](crate::TokenProvider::authorize).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        provider: ProviderId,
        account: Option<AccountId>,
        authorize_url: Url,
        state: impl Into<String>,
        pkce_verifier: Option<String>,
        redirect_uri: Option<String>,
        scopes: Vec<String>,
        created_at: SystemTime,
    ) -> Self {
        Self {
            provider,
            account,
            authorize_url,
            redirect_uri,
            scopes,
            created_at,
            params: BTreeMap::new(),
            state: SecretString::from(state.into()),
            pkce_verifier: pkce_verifier.map(SecretString::from),
        }
    }

    /// The `state` the callback must carry.
    pub fn state(&self) -> &SecretString {
        &self.state
    }

    /// The PKCE code verifier to send with the code.
    pub fn pkce_verifier(&self) -> Option<&SecretString> {
        self.pkce_verifier.as_ref()
    }

    /// Checks that the callback carries this authorization's state, comparing
    /// in constant time.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the state is missing or differs: the
    /// callback may be forged (CSRF) or belong to another login attempt.
    pub fn verify_state(&self, callback: &Callback) -> Result<()> {
        let expected = self.state.expose_secret().as_bytes();
        let matches = callback
            .state
            .as_deref()
            .is_some_and(|got| bool::from(got.as_bytes().ct_eq(expected)));
        if matches {
            Ok(())
        } else if callback.state.is_none() {
            Err(Error::invalid_input(
                "the callback carries no state; it does not answer this authorization request, \
                 start the authorization again",
            ))
        } else {
            Err(Error::invalid_input(
                "the callback's state does not match the pending authorization (possible CSRF, \
                 or a callback from another login attempt); start the authorization again",
            ))
        }
    }
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut endpoint = self.authorize_url.clone();
        endpoint.set_query(None);
        f.debug_struct("PendingAuthorization")
            .field("provider", &self.provider)
            .field("account", &self.account)
            .field("authorize_endpoint", &endpoint.as_str())
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field(
                "created_at",
                &humantime::format_rfc3339_seconds(self.created_at),
            )
            .field("params", &self.params)
            .field("state", &REDACTED)
            .field(
                "pkce_verifier",
                &self.pkce_verifier.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct PendingWire {
    provider: ProviderId,
    #[serde(default)]
    account: Option<AccountId>,
    authorize_url: Url,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    created_at: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
    state: String,
    #[serde(default)]
    pkce_verifier: Option<String>,
}

impl Serialize for PendingAuthorization {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        PendingWire {
            provider: self.provider.clone(),
            account: self.account.clone(),
            authorize_url: self.authorize_url.clone(),
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.clone(),
            created_at: humantime::format_rfc3339_millis(self.created_at).to_string(),
            params: self.params.clone(),
            state: self.state.expose_secret().to_owned(),
            pkce_verifier: self
                .pkce_verifier
                .as_ref()
                .map(|v| v.expose_secret().to_owned()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PendingAuthorization {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = PendingWire::deserialize(d)?;
        let created_at = humantime::parse_rfc3339_weak(&w.created_at)
            .map_err(|e| serde::de::Error::custom(format!("created_at: {e}")))?;
        Ok(Self {
            provider: w.provider,
            account: w.account,
            authorize_url: w.authorize_url,
            redirect_uri: w.redirect_uri,
            scopes: w.scopes,
            created_at,
            params: w.params,
            state: SecretString::from(w.state),
            pkce_verifier: w.pkce_verifier.map(SecretString::from),
        })
    }
}

/// The parameters the provider sent back to the redirect URI.
#[derive(Clone, Default)]
pub struct Callback {
    code: Option<SecretString>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
    params: BTreeMap<String, String>,
}

/// Callback parameters that are secrets or matched in constant time, and so
/// are never echoed into `Debug`.
const HIDDEN_PARAMS: [&str; 2] = ["code", "state"];

impl Callback {
    /// Parses a redirect URL (`https://app/cb?code=…&state=…`) or a bare
    /// query string (`code=…&state=…`, with or without `?`). A fragment, such
    /// as the `#_=_` Fitbit appends, is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the input is not a URL or query, a
    /// parameter appears twice (RFC 6749 §3.1), or it carries neither `code`
    /// nor `error`.
    pub fn parse(input: &str) -> Result<Self> {
        let input = input.trim();
        let input = input.split_once('#').map_or(input, |(before, _)| before);
        let query = if input.contains("://") {
            let url = Url::parse(input).map_err(|e| {
                Error::invalid_input(format!("the callback is not a valid URL ({e})"))
            })?;
            url.query().unwrap_or_default().to_owned()
        } else {
            input.strip_prefix('?').unwrap_or(input).to_owned()
        };
        Self::from_pairs(url::form_urlencoded::parse(query.as_bytes()).into_owned())
    }

    /// Builds a callback from decoded query parameters.
    ///
    /// # Errors
    ///
    /// As for [`Callback::parse`].
    pub fn from_pairs<I>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut cb = Callback::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "code" => {
                    if cb.code.is_some() {
                        return Err(duplicate(&name));
                    }
                    cb.code = Some(SecretString::from(value));
                    continue;
                }
                "state" => &mut cb.state,
                "error" => &mut cb.error,
                "error_description" => &mut cb.error_description,
                "iss" => &mut cb.iss,
                _ => {
                    if cb.params.insert(name.clone(), value).is_some() {
                        return Err(duplicate(&name));
                    }
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                return Err(duplicate(&name));
            }
        }
        if cb.code.is_none() && cb.error.is_none() {
            return Err(Error::invalid_input(
                "the callback carries neither `code` nor `error`; pass the full URL the browser \
                 was redirected to",
            ));
        }
        Ok(cb)
    }

    /// The authorization code, absent when the callback carries an error.
    pub fn code(&self) -> Option<&SecretString> {
        self.code.as_ref()
    }

    /// The returned `state`.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The `error` parameter, for example `access_denied`.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The `error_description` parameter.
    pub fn error_description(&self) -> Option<&str> {
        self.error_description.as_deref()
    }

    /// The `iss` parameter (RFC 9207), naming the issuer that answered.
    pub fn iss(&self) -> Option<&str> {
        self.iss.as_deref()
    }

    /// Other parameters, for example Google's `scope` and `authuser`.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Turns an error callback into [`Error::AuthorizationDenied`], and
    /// returns the code otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::AuthorizationDenied`] when the callback carries `error`
    /// (`access_denied` when the user clicked deny).
    pub fn code_or_error(&self) -> Result<&SecretString> {
        if let Some(error) = &self.error {
            return Err(Error::AuthorizationDenied {
                error: error.clone(),
                description: self.error_description.clone(),
            });
        }
        self.code
            .as_ref()
            .ok_or_else(|| Error::invalid_input("the callback carries no authorization code"))
    }
}

fn duplicate(name: &str) -> Error {
    Error::invalid_input(format!(
        "the callback repeats the `{name}` parameter, which RFC 6749 forbids; refusing it"
    ))
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code.as_ref().map(|_| REDACTED))
            .field("state", &self.state.as_ref().map(|_| REDACTED))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .field("iss", &self.iss)
            .field(
                "params",
                &self
                    .params
                    .iter()
                    .filter(|(k, _)| !HIDDEN_PARAMS.contains(&k.as_str()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(state: &str) -> PendingAuthorization {
        PendingAuthorization::new(
            ProviderId::new("p").unwrap(),
            None,
            Url::parse("https://example.com/authorize?state=x").unwrap(),
            state,
            Some("VERIFIER-SECRET".into()),
            Some("http://127.0.0.1/cb".into()),
            vec!["a".into()],
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn parses_full_url_with_fitbit_fragment() {
        let cb =
            Callback::parse("http://127.0.0.1:8976/callback?code=CODE-1&state=S1#_=_").unwrap();
        assert_eq!(cb.code().unwrap().expose_secret(), "CODE-1");
        assert_eq!(cb.state(), Some("S1"));
    }

    #[test]
    fn parses_bare_query_and_iss() {
        let cb = Callback::parse("?code=c&state=s&iss=https%3A%2F%2Fissuer").unwrap();
        assert_eq!(cb.iss(), Some("https://issuer"));
    }

    #[test]
    fn access_denied_is_a_clear_error() {
        let cb = Callback::parse("error=access_denied&error_description=The+user+denied&state=s")
            .unwrap();
        let err = cb.code_or_error().unwrap_err();
        assert!(matches!(err, Error::AuthorizationDenied { .. }));
        assert!(err.to_string().contains("access_denied"), "{err}");
        assert!(err.to_string().contains("The user denied"), "{err}");
    }

    #[test]
    fn rejects_duplicates_and_empty() {
        assert!(Callback::parse("code=a&code=b&state=s").is_err());
        assert!(Callback::parse("state=a&state=b&code=c").is_err());
        assert!(Callback::parse("foo=bar").is_err());
        assert!(Callback::parse("").is_err());
    }

    #[test]
    fn state_must_match() {
        let p = pending("STATE-1");
        assert!(
            p.verify_state(&Callback::parse("code=c&state=STATE-1").unwrap())
                .is_ok()
        );
        let err = p
            .verify_state(&Callback::parse("code=c&state=STATE-2").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("does not match"));
        assert!(!err.to_string().contains("STATE-1"));
        assert!(p.verify_state(&Callback::parse("code=c").unwrap()).is_err());
    }

    #[test]
    fn pending_round_trips_and_hides_secrets() {
        let p = pending("STATE-SECRET");
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("STATE-SECRET") && !dbg.contains("VERIFIER-SECRET"),
            "{dbg}"
        );
        let json = serde_json::to_string(&p).unwrap();
        let back: PendingAuthorization = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state().expose_secret(), "STATE-SECRET");
        assert_eq!(
            back.pkce_verifier().unwrap().expose_secret(),
            "VERIFIER-SECRET"
        );
        assert_eq!(back.redirect_uri, p.redirect_uri);
    }

    #[test]
    fn callback_debug_hides_code_and_state() {
        let cb = Callback::parse("code=CODE-SECRET&state=STATE-SECRET&scope=x").unwrap();
        let dbg = format!("{cb:?}");
        assert!(
            !dbg.contains("CODE-SECRET") && !dbg.contains("STATE-SECRET"),
            "{dbg}"
        );
    }
}
