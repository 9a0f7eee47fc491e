//! [`TokenSet`]: what one authorization grant gives us, and its stored form.
//!
//! Secrets live in [`secrecy`] types and are read only through
//! [`ExposeSecret`]; `Debug` prints `[redacted]` in their place. The serialized
//! form is explicit and versioned (see [`TokenSet`]'s serde section) because
//! stores keep it on disk for years: a reader refuses a format newer than it
//! knows instead of guessing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The stored format version written by this crate.
pub const TOKEN_FORMAT_VERSION: u32 = 1;

const REDACTED: &str = "[redacted]";

/// The tokens of one grant, plus what we know about them.
///
/// `Debug` never shows the access or refresh token; read them with
/// [`access_token`](Self::access_token) and
/// [`refresh_token`](Self::refresh_token) and then
/// [`ExposeSecret::expose_secret`].
///
/// # Serialized form
///
/// `Serialize` writes, and `Deserialize` reads, a JSON object with a
/// `"format"` field (currently `1`); a larger number is refused with an error
/// that says the data was written by a newer version. Times are RFC 3339
/// strings. This form contains the secrets: it is for stores, never for logs.
///
/// ```
/// use auth_core::TokenSet;
/// use std::time::{Duration, SystemTime};
///
/// let now = SystemTime::now();
/// let token = TokenSet::new("access", "Bearer", now)
///     .with_refresh_token("refresh")
///     .with_expires_in(Duration::from_secs(28_800))
///     .with_scopes(["activity", "sleep"]);
/// assert!(!format!("{token:?}").contains("access\""));
/// let json = serde_json::to_string(&token).unwrap();
/// let back: TokenSet = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.scopes().len(), 2);
/// ```
#[derive(Clone)]
pub struct TokenSet {
    // Every part that a clone would copy is shared between clones (and the
    // collections copied on write): the manager and the stores clone token
    // sets several times per refresh, and the copies (and, for secrets,
    // their zeroing) were most of what that cost. A shared secret is still
    // zeroed, when its last holder drops it.
    access_token: Arc<SecretString>,
    refresh_token: Option<Arc<SecretString>>,
    token_type: Arc<str>,
    expires_at: Option<SystemTime>,
    issued_at: SystemTime,
    scopes: Arc<BTreeSet<String>>,
    extras: Arc<BTreeMap<String, serde_json::Value>>,
    reauthorization_required: Option<String>,
    cooldown: Option<RefreshCooldown>,
    granted_at: Option<SystemTime>,
}

/// A pause before the next refresh attempt of one account, after refreshes
/// failed for a transient reason (an outage, a rate limit, a lock timeout).
///
/// It is stored with the token, so every process sharing the store honours
/// it: an outage costs one refresh attempt per cooldown, not one per call.
/// A successful refresh or a new authorization clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshCooldown {
    /// No refresh is attempted before this time.
    pub until: SystemTime,
    /// How many failed attempts in a row led here.
    pub failures: u32,
}

impl RefreshCooldown {
    /// A cooldown until `until`, after `failures` failures in a row.
    pub fn new(until: SystemTime, failures: u32) -> Self {
        Self { until, failures }
    }

    /// Whether the cooldown still holds at `now`.
    pub fn is_active(&self, now: SystemTime) -> bool {
        now < self.until
    }
}

impl TokenSet {
    /// A token set with an access token only, issued at `issued_at`.
    pub fn new(
        access_token: impl Into<String>,
        token_type: impl Into<String>,
        issued_at: SystemTime,
    ) -> Self {
        Self {
            access_token: Arc::new(SecretString::from(access_token.into())),
            refresh_token: None,
            token_type: Arc::from(token_type.into()),
            expires_at: None,
            issued_at,
            scopes: Arc::default(),
            extras: Arc::default(),
            reauthorization_required: None,
            cooldown: None,
            granted_at: None,
        }
    }

    /// Replaces the access token with an existing secret (for stores that
    /// transform secrets, such as an encrypting wrapper).
    #[must_use]
    pub fn with_access_secret(mut self, access_token: SecretString) -> Self {
        self.access_token = Arc::new(access_token);
        self
    }

    /// Removes a provider-specific field.
    #[must_use]
    pub fn without_extra(mut self, name: &str) -> Self {
        if self.extras.contains_key(name) {
            Arc::make_mut(&mut self.extras).remove(name);
        }
        self
    }

    /// Sets the refresh token.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(Arc::new(SecretString::from(refresh_token.into())));
        self
    }

    /// Sets or clears the refresh token from an existing secret.
    #[must_use]
    pub fn with_refresh_secret(mut self, refresh_token: Option<SecretString>) -> Self {
        self.refresh_token = refresh_token.map(Arc::new);
        self
    }

    /// Stamps the absolute expiry as `issued_at + expires_in`.
    #[must_use]
    pub fn with_expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_at = self.issued_at.checked_add(expires_in);
        self
    }

    /// Sets the absolute expiry.
    #[must_use]
    pub fn with_expires_at(mut self, expires_at: Option<SystemTime>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// Sets the granted scopes.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        // Inserted one by one: collecting sorts a buffer first, which costs
        // more than the handful of scopes a grant has.
        let mut set = BTreeSet::new();
        for scope in scopes {
            set.insert(scope.into());
        }
        self.scopes = Arc::new(set);
        self
    }

    /// Adds a provider-specific field, for example Fitbit's `user_id`.
    ///
    /// Extras are printed by `Debug` by name only, but they are stored in
    /// clear: never put a credential here.
    #[must_use]
    pub fn with_extra(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        Arc::make_mut(&mut self.extras).insert(name.into(), value);
        self
    }

    /// The access token. Read it with [`ExposeSecret::expose_secret`].
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// The refresh token, if the grant has one.
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh_token.as_deref()
    }

    /// The token type, usually `Bearer`.
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// When the access token expires, if the server said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// When we received the token.
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// The scopes the server granted, which may be fewer than requested.
    pub fn scopes(&self) -> &BTreeSet<String> {
        &self.scopes
    }

    /// Provider-specific fields.
    pub fn extras(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.extras
    }

    /// A provider-specific field as a string, if present and a string.
    pub fn extra_str(&self, name: &str) -> Option<&str> {
        self.extras.get(name).and_then(serde_json::Value::as_str)
    }

    /// Why this grant needs a new authorization, if it does. A flagged token
    /// is kept (never silently deleted) but not refreshed again.
    pub fn reauthorization_required(&self) -> Option<&str> {
        self.reauthorization_required.as_deref()
    }

    /// Flags the grant as needing a new authorization, for `reason`.
    #[must_use]
    pub fn flagged_for_reauthorization(mut self, reason: impl Into<String>) -> Self {
        self.reauthorization_required = Some(reason.into());
        self
    }

    /// Clears the reauthorization flag (an operator's decision that the
    /// flag was wrong) and any cooldown.
    #[must_use]
    pub fn unflagged(mut self) -> Self {
        self.reauthorization_required = None;
        self.cooldown = None;
        self
    }

    /// When the grant this token belongs to was received: the login (or
    /// the minting) it descends from, carried over by every refresh
    /// ([`merge_refreshed`](Self::merge_refreshed)). The manager stamps it
    /// on every new authorization it saves, and uses it to let a new login
    /// win over any token of an older grant, even one refreshed after the
    /// login. `None` for a token stored before this field existed, or one
    /// that never went through the manager.
    pub fn granted_at(&self) -> Option<SystemTime> {
        self.granted_at
    }

    /// Sets when the grant this token belongs to was received.
    #[must_use]
    pub fn with_granted_at(mut self, granted_at: SystemTime) -> Self {
        self.granted_at = Some(granted_at);
        self
    }

    /// This token as the first of a grant just received: its grant time is
    /// its issue time, unless one was set already.
    pub(crate) fn into_new_grant(self) -> Self {
        match self.granted_at {
            Some(_) => self,
            None => {
                let at = self.issued_at;
                self.with_granted_at(at)
            }
        }
    }

    /// The cooldown before the next refresh attempt, if one was recorded.
    pub fn refresh_cooldown(&self) -> Option<&RefreshCooldown> {
        self.cooldown.as_ref()
    }

    /// Sets or clears the refresh cooldown.
    #[must_use]
    pub fn with_refresh_cooldown(mut self, cooldown: Option<RefreshCooldown>) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Whether the access token is still usable at `now` with `margin` to
    /// spare. A token without a known expiry counts as usable.
    pub fn is_fresh(&self, now: SystemTime, margin: Duration) -> bool {
        match self.expires_at {
            None => true,
            Some(expires_at) => now
                .checked_add(margin)
                .is_some_and(|deadline| deadline < expires_at),
        }
    }

    /// Merges a refresh response into this grant: the new set wins, but a
    /// response without a refresh token keeps ours (Google omits it), and a
    /// response without scopes keeps ours (RFC 6749 §5.1: omitted means
    /// unchanged). Extras the new set lacks are kept. The result is never
    /// flagged for reauthorization.
    #[must_use]
    pub fn merge_refreshed(&self, mut new: TokenSet) -> TokenSet {
        if new.refresh_token.is_none() {
            new.refresh_token.clone_from(&self.refresh_token);
        }
        if new.scopes.is_empty() {
            new.scopes = Arc::clone(&self.scopes);
        }
        if self
            .extras
            .keys()
            .any(|name| !new.extras.contains_key(name))
        {
            let extras = Arc::make_mut(&mut new.extras);
            for (name, value) in self.extras.iter() {
                extras.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        if new.granted_at.is_none() {
            new.granted_at = self.granted_at;
        }
        new.reauthorization_required = None;
        new.cooldown = None;
        new
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &REDACTED)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| REDACTED),
            )
            .field("token_type", &self.token_type)
            .field(
                "expires_at",
                &self.expires_at.map(humantime::format_rfc3339_seconds),
            )
            .field(
                "issued_at",
                &humantime::format_rfc3339_seconds(self.issued_at),
            )
            .field("scopes", &self.scopes)
            .field("extras", &self.extras.keys().collect::<Vec<_>>())
            .field("reauthorization_required", &self.reauthorization_required)
            .field(
                "cooldown",
                &self.cooldown.map(|c| {
                    (
                        humantime::format_rfc3339_seconds(c.until).to_string(),
                        c.failures,
                    )
                }),
            )
            .field(
                "granted_at",
                &self.granted_at.map(humantime::format_rfc3339_seconds),
            )
            .finish()
    }
}

/// The wire form of a token set, format 1.
#[derive(Serialize, Deserialize)]
struct WireV1 {
    format: u32,
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    issued_at: String,
    #[serde(default)]
    scopes: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    extras: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reauthorization_required: Option<String>,
    /// Added in 0.2 within format 1: readers that do not know it ignore it
    /// and lose only the pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cooldown: Option<WireCooldown>,
    /// Added in 0.2 within format 1, like `cooldown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    granted_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireCooldown {
    until: String,
    failures: u32,
}

/// Reads only the format number first, so a newer format gets a clear error
/// instead of a confusing field error.
#[derive(Deserialize)]
struct FormatProbe {
    format: Option<u32>,
}

fn parse_time(field: &str, value: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(value)
        .map_err(|e| format!("{field} is not an RFC 3339 time ({e})"))
}

impl Serialize for TokenSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireV1 {
            format: TOKEN_FORMAT_VERSION,
            access_token: self.access_token.expose_secret().to_owned(),
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            token_type: self.token_type.to_string(),
            expires_at: self
                .expires_at
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            issued_at: humantime::format_rfc3339_millis(self.issued_at).to_string(),
            scopes: BTreeSet::clone(&self.scopes),
            extras: BTreeMap::clone(&self.extras),
            reauthorization_required: self.reauthorization_required.clone(),
            cooldown: self.cooldown.map(|c| WireCooldown {
                until: humantime::format_rfc3339_millis(c.until).to_string(),
                failures: c.failures,
            }),
            granted_at: self
                .granted_at
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TokenSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        // serde_json quotes a string of the wrong type in its messages, and
        // that string may be a token: every string of the input is redacted
        // from every error.
        let mut strings = Vec::new();
        collect_strings(&value, &mut strings);
        let strings: Vec<&str> = strings.iter().map(String::as_str).collect();
        let fail = |message: String| D::Error::custom(crate::redact::redact(&message, &strings));
        let probe = FormatProbe::deserialize(&value).map_err(|e| fail(e.to_string()))?;
        match probe.format {
            Some(TOKEN_FORMAT_VERSION) => {}
            Some(newer) if newer > TOKEN_FORMAT_VERSION => {
                return Err(fail(format!(
                    "token format {newer} was written by a newer version of this library \
                     (this one reads format {TOKEN_FORMAT_VERSION}); upgrade to read it"
                )));
            }
            Some(other) => {
                return Err(fail(format!("unknown token format {other}")));
            }
            None => return Err(fail("token has no \"format\" field".to_owned())),
        }
        let wire =
            WireV1::deserialize(value.clone()).map_err(|e| fail(format!("invalid token: {e}")))?;
        let expires_at = wire
            .expires_at
            .as_deref()
            .map(|t| parse_time("expires_at", t))
            .transpose()
            .map_err(fail)?;
        let issued_at = parse_time("issued_at", &wire.issued_at).map_err(fail)?;
        let cooldown = wire
            .cooldown
            .map(|c| {
                parse_time("cooldown.until", &c.until).map(|until| RefreshCooldown {
                    until,
                    failures: c.failures,
                })
            })
            .transpose()
            .map_err(fail)?;
        let granted_at = wire
            .granted_at
            .as_deref()
            .map(|t| parse_time("granted_at", t))
            .transpose()
            .map_err(fail)?;
        Ok(TokenSet {
            access_token: Arc::new(SecretString::from(wire.access_token)),
            refresh_token: wire
                .refresh_token
                .map(|token| Arc::new(SecretString::from(token))),
            token_type: Arc::from(wire.token_type),
            expires_at,
            issued_at,
            scopes: Arc::new(wire.scopes),
            extras: Arc::new(wire.extras),
            reauthorization_required: wire.reauthorization_required,
            cooldown,
            granted_at,
        })
    }
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// A valid access token handed out by
/// [`TokenManager::access_token`](crate::TokenManager::access_token).
///
/// It shares the cached [`TokenSet`], so handing one out costs an `Arc`
/// clone. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken(Arc<TokenSet>);

impl AccessToken {
    pub(crate) fn new(set: Arc<TokenSet>) -> Self {
        Self(set)
    }

    /// The access token itself: put it in an `Authorization` header, never in
    /// a log.
    pub fn secret(&self) -> &str {
        self.0.access_token.expose_secret()
    }

    /// The token type, usually `Bearer`.
    pub fn token_type(&self) -> &str {
        &self.0.token_type
    }

    /// When the token expires, if known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// The whole token set this token came from.
    pub fn token_set(&self) -> &Arc<TokenSet> {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &REDACTED)
            .field("token_type", &self.0.token_type)
            .field(
                "expires_at",
                &self.0.expires_at.map(humantime::format_rfc3339_seconds),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenSet {
        TokenSet::new(
            "ACCESS-SECRET-1",
            "Bearer",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        )
        .with_refresh_token("REFRESH-SECRET-1")
        .with_expires_in(Duration::from_secs(60))
        .with_scopes(["sleep", "activity"])
        .with_extra("user_id", serde_json::json!("26FWFL"))
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?} {:?}", sample(), AccessToken::new(Arc::new(sample())));
        assert!(!text.contains("ACCESS-SECRET-1"), "{text}");
        assert!(!text.contains("REFRESH-SECRET-1"), "{text}");
        assert!(text.contains("user_id"));
    }

    #[test]
    fn round_trips_through_json() {
        let json = serde_json::to_string(&sample()).unwrap();
        let back: TokenSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back.access_token().expose_secret(), "ACCESS-SECRET-1");
        assert_eq!(
            back.refresh_token().unwrap().expose_secret(),
            "REFRESH-SECRET-1"
        );
        assert_eq!(back.expires_at(), sample().expires_at());
        assert_eq!(back.issued_at(), sample().issued_at());
        assert_eq!(back.extra_str("user_id"), Some("26FWFL"));
        assert_eq!(back.scopes().len(), 2);
    }

    #[test]
    fn newer_format_is_refused_clearly() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["format"] = serde_json::json!(7);
        let err = serde_json::from_value::<TokenSet>(v)
            .unwrap_err()
            .to_string();
        assert!(err.contains("newer version"), "{err}");
    }

    #[test]
    fn decode_errors_do_not_echo_secrets() {
        let v = serde_json::json!({"format": 1, "access_token": "ACCESS-SECRET-1", "token_type": 5, "issued_at": "x"});
        let err = serde_json::from_value::<TokenSet>(v)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("ACCESS-SECRET-1"), "{err}");
    }

    #[test]
    fn type_errors_do_not_quote_string_values() {
        let v = serde_json::json!({"format": "ACCESS-SECRET-1"});
        let err = serde_json::from_value::<TokenSet>(v)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("ACCESS-SECRET-1"), "{err}");
        let v = serde_json::json!({"format": 1, "access_token": "a", "token_type": "Bearer",
            "issued_at": "2026-01-01T00:00:00Z", "scopes": "REFRESH-SECRET-1"});
        let err = serde_json::from_value::<TokenSet>(v)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("REFRESH-SECRET-1"), "{err}");
    }

    #[test]
    fn merge_keeps_old_refresh_token_and_scopes() {
        let old = sample();
        let new = TokenSet::new("ACCESS-2", "Bearer", SystemTime::UNIX_EPOCH);
        let merged = old.merge_refreshed(new);
        assert_eq!(
            merged.refresh_token().unwrap().expose_secret(),
            "REFRESH-SECRET-1"
        );
        assert_eq!(merged.access_token().expose_secret(), "ACCESS-2");
        assert_eq!(merged.scopes(), old.scopes());
        assert_eq!(merged.extra_str("user_id"), Some("26FWFL"));
    }

    #[test]
    fn the_grant_time_round_trips_and_is_carried_by_a_refresh() {
        let granted = SystemTime::UNIX_EPOCH + Duration::from_millis(4_000_250);
        let login = sample().with_granted_at(granted);
        let json = serde_json::to_string(&login).unwrap();
        let back: TokenSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back.granted_at(), Some(granted));
        let later = granted + Duration::from_secs(3600);
        let refreshed = back.merge_refreshed(TokenSet::new("A2", "Bearer", later));
        assert_eq!(refreshed.granted_at(), Some(granted));
        assert_eq!(refreshed.issued_at(), later);
        // Stored before the field existed: no grant time, and no error.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().remove("granted_at");
        let old: TokenSet = serde_json::from_value(old).unwrap();
        assert_eq!(old.granted_at(), None);
        let issued = old.issued_at();
        assert_eq!(old.into_new_grant().granted_at(), Some(issued));
        assert_eq!(login.into_new_grant().granted_at(), Some(granted));
    }

    #[test]
    fn clones_share_scopes_and_extras_until_one_changes() {
        let original = sample();
        let changed = original
            .clone()
            .with_extra("user_id", serde_json::json!("OTHER"))
            .without_extra("missing")
            .with_scopes(["weight"]);
        assert_eq!(original.extra_str("user_id"), Some("26FWFL"));
        assert_eq!(changed.extra_str("user_id"), Some("OTHER"));
        assert_eq!(original.scopes().len(), 2);
        assert_eq!(changed.scopes().len(), 1);
        let merged = changed.merge_refreshed(
            TokenSet::new("ACCESS-2", "Bearer", SystemTime::UNIX_EPOCH)
                .with_extra("plan", serde_json::json!("pro")),
        );
        assert_eq!(merged.extra_str("user_id"), Some("OTHER"));
        assert_eq!(merged.extra_str("plan"), Some("pro"));
        assert_eq!(changed.extras().len(), 1);
        let rotated = original.clone().with_refresh_token("REFRESH-SECRET-2");
        assert_eq!(
            original.refresh_token().unwrap().expose_secret(),
            "REFRESH-SECRET-1"
        );
        assert_eq!(
            rotated.refresh_token().unwrap().expose_secret(),
            "REFRESH-SECRET-2"
        );
        assert!(!format!("{rotated:?}").contains("REFRESH-SECRET"));
    }

    #[test]
    fn cooldown_round_trips_and_is_cleared_by_a_refresh() {
        let until = SystemTime::UNIX_EPOCH + Duration::from_millis(5_000_123);
        let cooling = sample().with_refresh_cooldown(Some(RefreshCooldown::new(until, 3)));
        let json = serde_json::to_string(&cooling).unwrap();
        let back: TokenSet = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.refresh_cooldown(),
            Some(&RefreshCooldown::new(until, 3))
        );
        assert!(format!("{back:?}").contains("cooldown"));
        let merged = back.merge_refreshed(TokenSet::new("A2", "Bearer", until));
        assert_eq!(merged.refresh_cooldown(), None);
        assert_eq!(
            back.flagged_for_reauthorization("x")
                .unflagged()
                .refresh_cooldown(),
            None
        );
    }

    #[test]
    fn freshness_respects_margin() {
        let t = sample();
        let issued = t.issued_at();
        assert!(t.is_fresh(issued, Duration::from_secs(30)));
        assert!(!t.is_fresh(issued, Duration::from_secs(60)));
        assert!(!t.is_fresh(issued + Duration::from_secs(61), Duration::ZERO));
    }
}
