//! [`ProviderSpec`]: one provider, as data.
//!
//! The schema, one TOML table per provider (`[strava]`), with these
//! sub-tables; every table refuses fields it does not know:
//!
//! | table | what it says |
//! |---|---|
//! | top level | `title`, `category`, `status` (`active`, `retired`, `template`), `successor`, `retirement_notice`, `checked` (date), `sources` (URLs) |
//! | `endpoints` | `authorize`, `token`, `revoke`, `introspect`, `device_authorization`, `userinfo`, `issuer`, `api_base_urls`, `introspect_style` (`rfc7662`, `google_tokeninfo`, `bearer`), `resource` (a path under the first API base that needs only a valid token) |
//! | `client` | `auth` (`client_secret_basic`, `client_secret_post`, `none`), `pkce` (`required`, `supported`, `unsupported`), `echo_state` (send `state` again with the code exchange) |
//! | `scopes` | `separator`, `default`, `offline` (the scopes a refresh token needs), `authorize_params`, `token_params`, `refresh_params` |
//! | `refresh` | `rotates`, `old_token_dies_at_once`, `replay_window`, `first_use_ends_window`, `lifetime`, `lifetime_by_app_status`, `idle_limit`, `may_omit_refresh_token`, `source` |
//! | `response` | `expires_in` (`number`, `string`, `absent`), `default_expires_in`, `envelope` (`withings`), `nested_token`, `keep_extras`, `form_encoded_unless_json`, `errors_with_200`, `unchanged_access_token_on_refresh`, `expires_in_choices`, `requested_expires_in` |
//! | `errors` | `format` (`rfc6749`, `fitbit`, `withings`, `github`, `slack`), `reauthorize`, `bad_client`, `bad_token_statuses`, `bad_token_codes` |
//! | `account` | `from` (`token`, `userinfo`, `none`), `field` (a dotted path such as `athlete.id`) |
//!
//! Endpoint URLs of a template may hold `{name}` placeholders (`{domain}`,
//! `{tenant}`), listed in `endpoints.placeholders`; [`ProviderSpec::instantiate`]
//! fills them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fact::{Fact, Seconds, Span};

/// One provider, as data. See the [module docs](self) for the schema.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderSpec {
    /// The provider's own name for itself, for people.
    pub title: String,
    /// `health`, `general` or `template`.
    pub category: Category,
    /// Whether the provider still answers.
    #[serde(default)]
    pub status: Status,
    /// The catalogue entry that replaces a retired provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// What to tell users when a retired provider answers 410 Gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retirement_notice: Option<String>,
    /// The day the facts were last checked against the sources, `YYYY-MM-DD`.
    pub checked: String,
    /// The documentation the facts came from. The refresh facts name their
    /// own source in [`RefreshSpec::source`].
    pub sources: Vec<String>,
    /// Where to send users and requests.
    pub endpoints: EndpointsSpec,
    /// How the client authenticates.
    pub client: ClientSpec,
    /// Scopes and the parameters that go with them.
    #[serde(default)]
    pub scopes: ScopesSpec,
    /// What refreshing does.
    pub refresh: RefreshSpec,
    /// How the token response departs from RFC 6749 §5.1.
    #[serde(default)]
    pub response: ResponseSpec,
    /// What the error answers mean.
    #[serde(default)]
    pub errors: ErrorsSpec,
    /// Where the account id comes from.
    #[serde(default)]
    pub account: AccountSpec,
}

/// What kind of provider an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Health and fitness data.
    Health,
    /// Everything else with a fixed address.
    General,
    /// An identity server whose address depends on a tenant or domain.
    Template,
}

/// Whether a provider still answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In service.
    #[default]
    Active,
    /// Switched off; its endpoints answer 410 Gone.
    Retired,
}

/// The endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EndpointsSpec {
    /// Where users authorize.
    pub authorize: String,
    /// Where codes and refresh tokens are exchanged.
    pub token: String,
    /// Token revocation (RFC 7009 or the provider's own), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<String>,
    /// Token introspection (RFC 7662 or the provider's own), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspect: Option<String>,
    /// RFC 8628 device authorization, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization: Option<String>,
    /// OpenID Connect userinfo, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<String>,
    /// The issuer identifier, for RFC 9207 and discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The origins of the provider's APIs: a token of this provider is sent
    /// to these and nowhere else.
    #[serde(default)]
    pub api_base_urls: Vec<String>,
    /// How the introspection endpoint is asked.
    #[serde(default)]
    pub introspect_style: IntrospectStyle,
    /// A resource path (joined to the first API base URL) that answers any
    /// valid token, for checking a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The placeholders the URLs hold (`domain`, `tenant`), for templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placeholders: Vec<String>,
}

/// How a provider's introspection endpoint is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrospectStyle {
    /// RFC 7662: form `token=` with client authentication.
    #[default]
    Rfc7662,
    /// Google's tokeninfo: form `access_token=`, no client authentication;
    /// a 400 means the token is not active.
    GoogleTokeninfo,
    /// Fitbit's v1.1: form `token=`, authenticated with the token itself as
    /// `Authorization: Bearer`.
    Bearer,
}

/// How the client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientSpec {
    /// The client authentication method at the token endpoint.
    pub auth: ClientAuthMethod,
    /// Whether PKCE is required, supported or refused.
    pub pkce: Pkce,
    /// Whether the code exchange carries the authorization's `state` again
    /// (legacy Fitbit takes it there).
    #[serde(default)]
    pub echo_state: bool,
}

/// RFC 8414 `token_endpoint_auth_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `Authorization: Basic`.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: no secret.
    None,
}

impl ClientAuthMethod {
    /// The RFC 8414 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

/// Whether the provider takes PKCE (RFC 7636).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pkce {
    /// Every authorization must carry a challenge.
    Required,
    /// Challenges are checked when sent.
    Supported,
    /// The provider ignores or refuses challenges: none is sent.
    Unsupported,
}

impl Pkce {
    /// The name in the catalogue.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Supported => "supported",
            Self::Unsupported => "unsupported",
        }
    }
}

/// Scopes and parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScopesSpec {
    /// What joins scopes in the `scope` parameter (RFC 6749: a space).
    #[serde(default = "space")]
    pub separator: String,
    /// Scopes asked for when the app names none.
    #[serde(default)]
    pub default: Vec<String>,
    /// Scopes without which no refresh token is issued (`offline_access`,
    /// `offline`); always added.
    #[serde(default)]
    pub offline: Vec<String>,
    /// Parameters added to every authorize URL (`access_type=offline`).
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// Parameters added to every token request.
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    /// Parameters added to refresh requests only (WHOOP: `scope=offline`).
    #[serde(default)]
    pub refresh_params: BTreeMap<String, String>,
}

fn space() -> String {
    " ".to_owned()
}

impl Default for ScopesSpec {
    fn default() -> Self {
        Self {
            separator: space(),
            default: Vec::new(),
            offline: Vec::new(),
            authorize_params: BTreeMap::new(),
            token_params: BTreeMap::new(),
            refresh_params: BTreeMap::new(),
        }
    }
}

/// What refreshing does. Every fact may be `"unknown"`; [`rules`](Self::rules)
/// reads the safe value for those.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RefreshSpec {
    /// Whether a refresh issues a new refresh token.
    pub rotates: Fact<bool>,
    /// Whether the old refresh token stops working as soon as a new one is
    /// issued.
    #[serde(default)]
    pub old_token_dies_at_once: Fact<bool>,
    /// How long a used refresh token may be replayed for the same answer:
    /// `"none"` or a duration.
    #[serde(default)]
    pub replay_window: Fact<Span>,
    /// Whether the first use of the new pair ends the replay window.
    #[serde(default)]
    pub first_use_ends_window: Fact<bool>,
    /// How long a refresh token lives: `"none"` (until revoked) or a
    /// duration.
    #[serde(default)]
    pub lifetime: Fact<Span>,
    /// Lifetimes that depend on the app's status with the provider (Google:
    /// `testing = "7d"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lifetime_by_app_status: BTreeMap<String, Seconds>,
    /// How long a refresh token may go unused before it dies.
    #[serde(default)]
    pub idle_limit: Fact<Span>,
    /// Whether a refresh response may leave out the refresh token (the old
    /// one then stays in use).
    #[serde(default)]
    pub may_omit_refresh_token: Fact<bool>,
    /// The documentation the rotation facts came from.
    pub source: String,
}

/// The refresh facts as the token manager acts on them: one to one with
/// `auth_core::RefreshRules`. Unknown facts read as the safe value: the
/// token rotates and there is no replay window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshRules {
    /// Whether refresh tokens rotate.
    pub rotating: bool,
    /// How long a used refresh token can be replayed, if at all.
    pub replay_window: Option<Duration>,
    /// Whether the first use of the new pair ends the window.
    pub first_use_ends_window: bool,
}

impl RefreshSpec {
    /// The facts to act on, with unknowns read safely.
    pub fn rules(&self) -> RefreshRules {
        let rotating = self.rotates.or(true);
        RefreshRules {
            rotating,
            replay_window: if rotating {
                self.replay_window.or(Span::None).duration()
            } else {
                None
            },
            // Unknown: assume the first use may end it, which keeps the
            // manager from handing out an unsaved pair.
            first_use_ends_window: self.first_use_ends_window.or(true),
        }
    }
}

impl RefreshRules {
    /// Whether handing out a refreshed access token before its pair is saved
    /// could lose the grant: true unless refresh tokens are known not to
    /// rotate, or a replay window is known to survive the first use.
    pub fn use_ends_replay_window(&self) -> bool {
        self.rotating && (self.replay_window.is_none() || self.first_use_ends_window)
    }
}

/// How `expires_in` arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiresIn {
    /// A JSON number (RFC 6749).
    #[default]
    Number,
    /// A string holding a number.
    String,
    /// Left out; [`ResponseSpec::default_expires_in`] says how long tokens live.
    Absent,
}

/// Envelopes around a token response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// `{"status": 0, "body": {…}}`; a non-zero status is an error, sent with
    /// HTTP 200.
    Withings,
}

/// How the token response departs from RFC 6749 §5.1.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResponseSpec {
    /// How `expires_in` arrives.
    #[serde(default)]
    pub expires_in: ExpiresIn,
    /// The documented access token lifetime when `expires_in` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_expires_in: Option<Seconds>,
    /// The `expires_in` values a client may ask for on the token request
    /// (Fitbit: 3600 or 28800 seconds); empty: the client cannot ask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expires_in_choices: Vec<u64>,
    /// The `expires_in` to ask for on every token request, one of
    /// [`expires_in_choices`](Self::expires_in_choices); none: the server's
    /// default lifetime. A client's own choice replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_expires_in: Option<u64>,
    /// An envelope around the token fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
    /// The object that holds the user's token (Slack: `authed_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested_token: Option<String>,
    /// Extra fields to keep with the token (`athlete`, `instance_url`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_extras: Vec<String>,
    /// The token endpoint answers form-encoded unless asked for JSON.
    #[serde(default)]
    pub form_encoded_unless_json: bool,
    /// Errors may come with HTTP 200.
    #[serde(default)]
    pub errors_with_200: bool,
    /// A refresh may hand back the same access token while it is still
    /// valid for long enough.
    #[serde(default)]
    pub unchanged_access_token_on_refresh: bool,
}

/// How error bodies look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorFormat {
    /// `{"error": …, "error_description": …}` (RFC 6749 §5.2).
    #[default]
    Rfc6749,
    /// `{"errors": [{"errorType": …, "message": …}], "success": false}`.
    Fitbit,
    /// `{"status": N, "error": "…"}` with HTTP 200.
    Withings,
    /// RFC 6749 fields with HTTP 200 (`bad_refresh_token`).
    Github,
    /// `{"ok": false, "error": "…"}` with HTTP 200.
    Slack,
}

/// What error answers mean.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ErrorsSpec {
    /// How error bodies look.
    #[serde(default)]
    pub format: ErrorFormat,
    /// Codes that mean the grant is gone: the user logs in again.
    #[serde(default = "reauthorize_codes")]
    pub reauthorize: Vec<String>,
    /// Codes that mean the client is wrong (id, secret, method).
    #[serde(default = "bad_client_codes")]
    pub bad_client: Vec<String>,
    /// Statuses with which a resource server says the access token is bad.
    #[serde(default = "bad_token_statuses")]
    pub bad_token_statuses: Vec<u16>,
    /// Error codes in a resource server's body that mean the token is bad.
    #[serde(default = "bad_token_codes")]
    pub bad_token_codes: Vec<String>,
}

fn reauthorize_codes() -> Vec<String> {
    vec!["invalid_grant".to_owned()]
}

fn bad_client_codes() -> Vec<String> {
    vec![
        "invalid_client".to_owned(),
        "unauthorized_client".to_owned(),
    ]
}

fn bad_token_statuses() -> Vec<u16> {
    vec![401]
}

fn bad_token_codes() -> Vec<String> {
    vec!["invalid_token".to_owned()]
}

impl Default for ErrorsSpec {
    fn default() -> Self {
        Self {
            format: ErrorFormat::default(),
            reauthorize: reauthorize_codes(),
            bad_client: bad_client_codes(),
            bad_token_statuses: bad_token_statuses(),
            bad_token_codes: bad_token_codes(),
        }
    }
}

/// Where an account id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountFrom {
    /// A token response field.
    Token,
    /// A field of the userinfo answer.
    Userinfo,
    /// Nowhere: the app names the account.
    #[default]
    None,
}

/// Where the account id comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccountSpec {
    /// The source.
    #[serde(default)]
    pub from: AccountFrom,
    /// The field: a name or a dotted path (`athlete.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl AccountSpec {
    /// The field's path, split at dots.
    pub fn path(&self) -> Vec<&str> {
        self.field
            .as_deref()
            .map(|f| f.split('.').collect())
            .unwrap_or_default()
    }
}

impl ProviderSpec {
    /// The refresh facts to act on.
    pub fn refresh_rules(&self) -> RefreshRules {
        self.refresh.rules()
    }

    /// Whether the entry needs placeholders filled before use.
    pub fn is_template(&self) -> bool {
        !self.endpoints.placeholders.is_empty()
    }

    /// Every endpoint URL with a name, in a fixed order.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        let e = &self.endpoints;
        let mut urls = vec![
            ("authorize", e.authorize.as_str()),
            ("token", e.token.as_str()),
        ];
        for (name, url) in [
            ("revoke", &e.revoke),
            ("introspect", &e.introspect),
            ("device_authorization", &e.device_authorization),
            ("userinfo", &e.userinfo),
            ("issuer", &e.issuer),
        ] {
            if let Some(url) = url {
                urls.push((name, url.as_str()));
            }
        }
        for url in &e.api_base_urls {
            urls.push(("api_base_url", url.as_str()));
        }
        urls
    }

    /// Fills the placeholders of a template (`{domain}`, `{tenant}`) in
    /// every URL.
    ///
    /// # Errors
    ///
    /// [`MissingPlaceholder`] naming the first placeholder with no value.
    pub fn instantiate(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<ProviderSpec, MissingPlaceholder> {
        for name in &self.endpoints.placeholders {
            if !values.contains_key(name) {
                return Err(MissingPlaceholder {
                    placeholder: name.clone(),
                });
            }
        }
        let fill = |url: &str| {
            let mut out = url.to_owned();
            for (name, value) in values {
                out = out.replace(&format!("{{{name}}}"), value);
            }
            out
        };
        let fill_opt = |url: &Option<String>| url.as_deref().map(fill);
        let mut spec = self.clone();
        let e = &self.endpoints;
        spec.endpoints = EndpointsSpec {
            authorize: fill(&e.authorize),
            token: fill(&e.token),
            revoke: fill_opt(&e.revoke),
            introspect: fill_opt(&e.introspect),
            device_authorization: fill_opt(&e.device_authorization),
            userinfo: fill_opt(&e.userinfo),
            issuer: fill_opt(&e.issuer),
            api_base_urls: e.api_base_urls.iter().map(|u| fill(u)).collect(),
            introspect_style: e.introspect_style,
            resource: e.resource.clone(),
            placeholders: Vec::new(),
        };
        Ok(spec)
    }
}

/// A template was used without a value for one of its placeholders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the entry needs a value for {{{placeholder}}}; give it as {placeholder} = \"…\"")]
pub struct MissingPlaceholder {
    /// The placeholder's name.
    pub placeholder: String,
}
