//! The rules between a section's keys that its shape's types cannot say:
//! who needs a secret, which endpoints a server needs, which values a
//! catalogue entry allows.

use std::collections::BTreeMap;

use auth_catalogue::{ClientAuthMethod, ProviderSpec};
use auth_fitbit::AppType;
use auth_oauth2::ClientAuth;
use secrecy::SecretString;

use super::section::Section;
use super::shapes::{Common, FitbitAppType, Grant, OAuth2Section};
use super::{SecretSource, Urls};
use crate::exit::CliResult;

/// Where the secret comes from; at most one of the two keys.
pub(super) fn secret_source(section: &Section<'_>, common: &Common) -> CliResult<SecretSource> {
    match (&common.client_secret_env, &common.client_secret) {
        (Some(_), Some(_)) => Err(section.error(
            "client_secret",
            "give either client_secret_env or client_secret, not both (prefer client_secret_env)",
        )),
        (Some(var), None) => {
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(section.error(
                    "client_secret_env",
                    format!("{var:?} is not an environment variable name"),
                ));
            }
            Ok(SecretSource::Env(var.clone()))
        }
        (None, Some(toml::Value::String(secret))) => {
            Ok(SecretSource::Inline(SecretString::from(secret.clone())))
        }
        (None, Some(_)) => Err(section.error("client_secret", "must be a string")),
        (None, None) => Ok(SecretSource::None),
    }
}

/// `kind = "fitbit"`: the app type decides whether there is a secret.
pub(super) fn fitbit(
    section: &Section<'_>,
    app_type: FitbitAppType,
    has_secret: bool,
) -> CliResult<AppType> {
    match (app_type, has_secret) {
        (FitbitAppType::Server, false) => Err(section.error(
            "client_secret_env",
            "missing: a Fitbit server app needs its client secret; name the environment \
             variable that holds it (or set app_type = \"public\")",
        )),
        (FitbitAppType::Public, true) => Err(section.error(
            "app_type",
            "a public app has no client secret; remove client_secret_env / client_secret, or \
             use app_type = \"server\"",
        )),
        _ => Ok(app_type.app_type()),
    }
}

/// `kind = "google-health"`: a web client with a secret.
pub(super) fn google_health(section: &Section<'_>, has_secret: bool) -> CliResult {
    if has_secret {
        Ok(())
    } else {
        Err(section.error(
            "client_secret_env",
            "missing: a Google web client needs its client secret; name the environment \
             variable that holds it",
        ))
    }
}

/// `kind = "oauth2"`: discovery or explicit endpoints, a secret that
/// matches the client authentication method, and `audience` and
/// `resource` only with the client credentials grant.
pub(super) fn oauth2(
    section: &Section<'_>,
    shape: &OAuth2Section,
    has_secret: bool,
    urls: &Urls,
) -> CliResult<ClientAuth> {
    let grant = shape.grant;
    let auth_method = shape
        .auth_method
        .map_or(ClientAuth::ClientSecretBasic, |method| method.0);
    if grant == Grant::ClientCredentials && auth_method == ClientAuth::None {
        return Err(section.error(
            "auth_method",
            "the client credentials grant needs a confidential client (RFC 6749 §4.4); use \
             client_secret_basic or client_secret_post, with its secret",
        ));
    }
    if grant != Grant::ClientCredentials {
        for (field, set) in [
            ("audience", shape.audience.is_some()),
            ("resource", shape.resource.is_some()),
        ] {
            if set {
                return Err(section.error(
                    field,
                    "applies only to grant = \"client_credentials\"; remove it",
                ));
            }
        }
    }
    match (auth_method, has_secret) {
        (ClientAuth::None, true) => {
            return Err(section.error(
                "auth_method",
                "\"none\" is for public clients, which have no secret; remove the secret or \
                 choose client_secret_basic / client_secret_post",
            ));
        }
        (ClientAuth::None, false) | (_, true) => {}
        (_, false) => {
            return Err(section.error(
                "client_secret_env",
                format!(
                    "missing: auth_method {} needs a client secret; name the environment \
                     variable that holds it (or use auth_method = \"none\")",
                    auth_method.as_str()
                ),
            ));
        }
    }
    let endpoints = [
        ("authorize_url", urls.authorize.is_some()),
        ("token_url", urls.token.is_some()),
        ("introspect_url", urls.introspect.is_some()),
        ("revoke_url", urls.revoke.is_some()),
        ("device_authorization_url", urls.device.is_some()),
    ];
    if shape.issuer.is_some() {
        if let Some((field, _)) = endpoints.iter().find(|(_, set)| *set) {
            return Err(section.error(
                field,
                "the endpoints come from discovery when issuer is set; give either issuer or \
                 the endpoint URLs",
            ));
        }
    } else if grant == Grant::ClientCredentials {
        if urls.token.is_none() {
            return Err(section.error(
                "token_url",
                "missing: a client credentials provider needs issuer (for discovery) or token_url",
            ));
        }
    } else if let Some((field, _)) = endpoints[..2].iter().find(|(_, set)| !*set) {
        return Err(section.error(
            field,
            "missing: an oauth2 provider needs issuer (for discovery) or authorize_url and \
             token_url",
        ));
    }
    Ok(auth_method)
}

/// A catalogue entry's kind (`written`): the entry decides the client
/// authentication, so the section gives only the id, the secret (unless
/// the entry's clients are public) and the redirect URI.
pub(super) fn catalogue(
    section: &Section<'_>,
    written: &str,
    has_secret: bool,
    spec: &ProviderSpec,
) -> CliResult<ClientAuth> {
    let auth = auth_oauth2::catalogue::client_auth(spec.client.auth);
    match (spec.client.auth, has_secret) {
        (ClientAuthMethod::None, true) => Err(section.error(
            "client_secret",
            format!("{written} clients are public and have no secret; remove it"),
        )),
        (ClientAuthMethod::None, false) | (_, true) => Ok(auth),
        (_, false) => Err(section.error(
            "client_secret_env",
            format!(
                "missing: {written} authenticates clients with {}; name the environment \
                 variable that holds the client secret",
                spec.client.auth.as_str()
            ),
        )),
    }
}

/// A template entry's placeholders, from `placeholders = { domain = "…" }`.
pub(super) fn fill_placeholders(
    section: &Section<'_>,
    written: &str,
    placeholders: Option<&BTreeMap<String, String>>,
    spec: &ProviderSpec,
) -> CliResult<ProviderSpec> {
    if !spec.is_template() {
        if placeholders.is_some() {
            return Err(section.error(
                "placeholders",
                format!("{written} is not a template; remove it"),
            ));
        }
        return Ok(spec.clone());
    }
    let values = placeholders.cloned().unwrap_or_default();
    for name in values.keys() {
        if !spec.endpoints.placeholders.contains(name) {
            return Err(section.error(
                "placeholders",
                format!(
                    "{name:?} is not a placeholder of {written}; it takes {}",
                    spec.endpoints.placeholders.join(", ")
                ),
            ));
        }
    }
    spec.instantiate(&values)
        .map_err(|e| section.error("placeholders", e))
}

/// `expires_in`: one of the lifetimes `entry` accepts.
pub(super) fn expires_in(
    section: &Section<'_>,
    seconds: Option<u64>,
    entry: Option<&ProviderSpec>,
) -> CliResult {
    let Some(seconds) = seconds else {
        return Ok(());
    };
    let choices = entry
        .map(|e| e.response.expires_in_choices.clone())
        .unwrap_or_default();
    if choices.contains(&seconds) {
        return Ok(());
    }
    Err(section.error(
        "expires_in",
        if choices.is_empty() {
            "this provider takes no expires_in on its token requests; remove it".to_owned()
        } else {
            format!(
                "{seconds} is not a lifetime this provider accepts; use {}",
                choices
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        },
    ))
}
