//! RFC 8414 / OpenID Connect discovery of a server's endpoints.

use auth_core::{Error, ProviderId, Result};
use serde::Deserialize;
use url::Url;

use crate::classify::{Context, excerpt};
use crate::config::Endpoints;
use crate::hooks::StandardHooks;
use crate::http::HttpClient;

/// What discovery found.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub(crate) issuer: String,
    pub(crate) endpoints: Endpoints,
    pub(crate) iss_parameter_supported: bool,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    #[serde(default)]
    introspection_endpoint: Option<Url>,
    #[serde(default)]
    revocation_endpoint: Option<Url>,
    #[serde(default)]
    device_authorization_endpoint: Option<Url>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// The well-known URLs for `issuer`: RFC 8414 inserts the well-known segment
/// before the issuer's path; OpenID appends it.
fn candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut openid = issuer.clone();
    openid.set_path(&format!("{path}/.well-known/openid-configuration"));
    vec![rfc8414, openid]
}

pub(crate) async fn discover(http: &HttpClient, id: &ProviderId, issuer: &Url) -> Result<Metadata> {
    let hooks = StandardHooks;
    let ctx = Context {
        provider: id,
        endpoint: "discovery",
        hooks: &hooks,
        secrets: &[],
    };
    let mut last_status = None;
    for url in candidates(issuer) {
        let request = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Error::configuration(format!("bad discovery URL {url}: {e}")))?;
        let meta = http.execute(request).await.map_err(|e| ctx.transport(&e))?;
        if meta.status == http::StatusCode::NOT_FOUND {
            last_status = Some(404);
            continue;
        }
        if !meta.status.is_success() {
            return Err(ctx.response(&meta));
        }
        let doc: Document = serde_json::from_slice(&meta.body).map_err(|e| {
            Error::protocol(
                Some(meta.status.as_u16()),
                format!("the metadata at {url} is not valid ({e})"),
                excerpt(&meta.body, &[]),
            )
        })?;
        let same_issuer = doc.issuer.trim_end_matches('/') == issuer.as_str().trim_end_matches('/');
        if !same_issuer {
            return Err(Error::configuration(format!(
                "the metadata at {url} names the issuer {:?}, not {issuer} (RFC 8414 §3.3); check the issuer URL",
                doc.issuer
            )));
        }
        if let Some(methods) = &doc.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(Error::configuration(format!(
                "{issuer} does not support PKCE S256 (it lists {methods:?}); this client always uses S256"
            )));
        }
        let endpoints = Endpoints {
            authorize: doc.authorization_endpoint,
            token: doc.token_endpoint,
            introspection: doc.introspection_endpoint,
            revocation: doc.revocation_endpoint,
            device_authorization: doc.device_authorization_endpoint,
        };
        endpoints.validate()?;
        return Ok(Metadata {
            issuer: doc.issuer,
            endpoints,
            iss_parameter_supported: doc.authorization_response_iss_parameter_supported,
        });
    }
    Err(Error::configuration(format!(
        "no server metadata at {issuer} (HTTP {}): neither RFC 8414 nor OpenID discovery answered; \
         check the issuer URL or configure the endpoints",
        last_status.unwrap_or(404)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls() {
        let c = candidates(&Url::parse("https://example.com/tenant/a").unwrap());
        assert_eq!(
            c[0].as_str(),
            "https://example.com/.well-known/oauth-authorization-server/tenant/a"
        );
        assert_eq!(
            c[1].as_str(),
            "https://example.com/tenant/a/.well-known/openid-configuration"
        );
        let c = candidates(&Url::parse("http://127.0.0.1:9/").unwrap());
        assert_eq!(
            c[0].as_str(),
            "http://127.0.0.1:9/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            c[1].as_str(),
            "http://127.0.0.1:9/.well-known/openid-configuration"
        );
    }
}
