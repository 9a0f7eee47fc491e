//! The rules between a section's keys that its shape's types cannot say:
//! who needs a secret, which endpoints a server needs, which values a
//! catalogue entry allows. Each rule that holds gives the checked setting
//! (a [`FitbitApp`] with its secret, an [`OAuth2`] with its server), so the
//! kinds' settings cannot be made without passing them.

use std::collections::BTreeMap;

use auth_catalogue::{ClientAuthMethod, ProviderSpec};
use auth_oauth2::{ClientAuth, Endpoints};
use url::Url;

use super::kinds::{EndpointUrls, FitbitApp, OAuth2, OAuth2Client, OAuth2Grant, Server};
use super::secret::Secret;
use super::section::Section;
use super::shapes::{FitbitAppType, Grant, OAuth2Section};
use crate::exit::CliResult;

/// `kind = "fitbit"`: the app type decides whether there is a secret.
pub(super) fn fitbit(
    section: &Section<'_>,
    app_type: FitbitAppType,
    secret: Option<Secret>,
) -> CliResult<FitbitApp> {
    match (app_type, secret) {
        (FitbitAppType::Server, None) => Err(section.error(
            "client_secret_env",
            "missing: a Fitbit server app needs its client secret; name the environment \
             variable that holds it (or set app_type = \"public\")",
        )),
        (FitbitAppType::Public, Some(_)) => Err(section.error(
            "app_type",
            "a public app has no client secret; remove client_secret_env / client_secret, or \
             use app_type = \"server\"",
        )),
        (FitbitAppType::Server, Some(secret)) => Ok(FitbitApp::Server(secret)),
        (FitbitAppType::Public, None) => Ok(FitbitApp::Public),
    }
}

/// `kind = "google-health"`: a web client with a secret.
pub(super) fn google_health(section: &Section<'_>, secret: Option<Secret>) -> CliResult<Secret> {
    secret.ok_or_else(|| {
        section.error(
            "client_secret_env",
            "missing: a Google web client needs its client secret; name the environment \
             variable that holds it",
        )
    })
}

/// `kind = "oauth2"`: discovery or explicit endpoints, a secret that
/// matches the client authentication method, and `audience` and
/// `resource` only with the client credentials grant. `issuer` and
/// `device` are the checked `issuer` and `device_authorization_url`.
pub(super) fn oauth2(
    section: &Section<'_>,
    shape: &OAuth2Section,
    secret: Option<Secret>,
    urls: EndpointUrls,
    device: Option<Url>,
    issuer: Option<Url>,
) -> CliResult<OAuth2> {
    let auth_method = shape
        .auth_method
        .map_or(ClientAuth::ClientSecretBasic, |method| method.0);
    let grant = match shape.grant {
        Grant::ClientCredentials if auth_method == ClientAuth::None => {
            return Err(section.error(
                "auth_method",
                "the client credentials grant needs a confidential client (RFC 6749 §4.4); \
                 use client_secret_basic or client_secret_post, with its secret",
            ));
        }
        Grant::ClientCredentials => OAuth2Grant::ClientCredentials {
            audience: shape.audience.clone(),
            resource: shape.resource.clone(),
        },
        Grant::AuthorizationCode => {
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
            OAuth2Grant::AuthorizationCode
        }
    };
    let client = match (auth_method, secret) {
        (ClientAuth::None, Some(_)) => {
            return Err(section.error(
                "auth_method",
                "\"none\" is for public clients, which have no secret; remove the secret or \
                 choose client_secret_basic / client_secret_post",
            ));
        }
        (ClientAuth::None, None) => OAuth2Client::Public,
        (method, Some(secret)) => OAuth2Client::Confidential { method, secret },
        (method, None) => {
            return Err(section.error(
                "client_secret_env",
                format!(
                    "missing: auth_method {} needs a client secret; name the environment \
                     variable that holds it (or use auth_method = \"none\")",
                    method.as_str()
                ),
            ));
        }
    };
    let server = server(section, shape.grant, urls, device, issuer)?;
    Ok(OAuth2 {
        client,
        grant,
        server,
    })
}

/// Where an `oauth2` section's endpoints come from: discovery from its
/// issuer, or its URLs. A client credentials provider never sends anyone
/// to authorize: its token URL stands in for the authorize URL it has no
/// use for.
fn server(
    section: &Section<'_>,
    grant: Grant,
    urls: EndpointUrls,
    device: Option<Url>,
    issuer: Option<Url>,
) -> CliResult<Server> {
    if let Some(issuer) = issuer {
        let endpoints = [
            ("authorize_url", urls.authorize.is_some()),
            ("token_url", urls.token.is_some()),
            ("introspect_url", urls.introspect.is_some()),
            ("revoke_url", urls.revoke.is_some()),
            ("device_authorization_url", device.is_some()),
        ];
        if let Some((field, _)) = endpoints.iter().find(|(_, set)| *set) {
            return Err(section.error(
                field,
                "the endpoints come from discovery when issuer is set; give either issuer or \
                 the endpoint URLs",
            ));
        }
        return Ok(Server::Discovery(issuer));
    }
    let EndpointUrls {
        authorize,
        token,
        introspect,
        revoke,
    } = urls;
    let missing = "missing: an oauth2 provider needs issuer (for discovery) or authorize_url and \
                   token_url";
    let (authorize, token) = match (grant, authorize, token) {
        (Grant::ClientCredentials, authorize, Some(token)) => {
            (authorize.unwrap_or_else(|| token.clone()), token)
        }
        (Grant::ClientCredentials, _, None) => {
            return Err(section.error(
                "token_url",
                "missing: a client credentials provider needs issuer (for discovery) or \
                 token_url",
            ));
        }
        (Grant::AuthorizationCode, Some(authorize), Some(token)) => (authorize, token),
        (Grant::AuthorizationCode, None, _) => return Err(section.error("authorize_url", missing)),
        (Grant::AuthorizationCode, Some(_), None) => {
            return Err(section.error("token_url", missing));
        }
    };
    let mut endpoints = Endpoints::new(authorize, token);
    if let Some(url) = introspect {
        endpoints = endpoints.with_introspection(url);
    }
    if let Some(url) = revoke {
        endpoints = endpoints.with_revocation(url);
    }
    if let Some(url) = device {
        endpoints = endpoints.with_device_authorization(url);
    }
    Ok(Server::Endpoints(Box::new(endpoints)))
}

/// A catalogue entry's kind (`written`): the entry decides the client
/// authentication, so the section gives only the id, the secret (unless
/// the entry's clients are public) and the redirect URI.
pub(super) fn catalogue(
    section: &Section<'_>,
    written: &str,
    secret: Option<Secret>,
    spec: &ProviderSpec,
) -> CliResult<Option<Secret>> {
    match (spec.client.auth, secret) {
        (ClientAuthMethod::None, Some(_)) => Err(section.error(
            "client_secret",
            format!("{written} clients are public and have no secret; remove it"),
        )),
        (ClientAuthMethod::None, None) => Ok(None),
        (_, Some(secret)) => Ok(Some(secret)),
        (_, None) => Err(section.error(
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
