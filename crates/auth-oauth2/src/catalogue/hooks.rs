//! [`CatalogueHooks`]: a catalogue entry's quirks as [`Hooks`].

use std::collections::BTreeMap;
use std::sync::Arc;

use auth_catalogue::{AccountFrom, IntrospectStyle, ProviderSpec, Status};
use auth_core::{AccountId, GrantedScope, Introspection, ResourceResponse, Result, TokenSet};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::response;
use crate::hooks::{
    ErrorMeaning, Hooks, IntrospectionContext, Retirement, ServerError, epoch_seconds_or_millis,
    parse_rfc7662,
};
use crate::http::ResponseMeta;

/// The hooks a catalogue entry describes: its retirement and successor,
/// its error bodies and codes, its
/// token response quirks, its scope separator, its account id field, its
/// introspection style and what its resource servers say about a bad token.
///
/// A provider with quirks beyond the data (legacy Fitbit's rate-limit
/// headers) wraps these and overrides only what it adds.
#[derive(Debug, Clone)]
pub struct CatalogueHooks {
    spec: Arc<ProviderSpec>,
    rewrite: bool,
}

impl CatalogueHooks {
    /// The hooks of `spec`.
    pub fn new(spec: Arc<ProviderSpec>) -> Self {
        let rewrite = response::needs_rewrite(&spec.response, &spec.errors);
        Self { spec, rewrite }
    }

    /// The entry.
    pub fn spec(&self) -> &ProviderSpec {
        &self.spec
    }
}

/// Follows a dotted path into a JSON value; a number reads as its digits.
fn at_path<'v>(value: &'v Value, path: &[&str]) -> Option<std::borrow::Cow<'v, str>> {
    let mut here = value;
    for part in path {
        here = here.get(part)?;
    }
    match here {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// Removes credentials at any depth of a kept extra field.
fn without_credentials(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "access_token" | "refresh_token" | "id_token")
                })
                .map(|(k, v)| (k.clone(), without_credentials(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_credentials).collect()),
        other => other.clone(),
    }
}

impl Hooks for CatalogueHooks {
    fn retirement(&self) -> Option<Retirement> {
        if self.spec.status != Status::Retired {
            return None;
        }
        Some(Retirement {
            successor: self.spec.successor.clone()?,
            notice: self.spec.retirement_notice.clone(),
        })
    }

    fn parse_error(&self, response: &ResponseMeta) -> Option<ServerError> {
        let (code, description) = response::error_code(&response.body, self.spec.errors.format)?;
        Some(ServerError { code, description })
    }

    fn normalize_token_response(&self, meta: ResponseMeta) -> ResponseMeta {
        if self.rewrite {
            response::rewrite(meta, &self.spec.response, &self.spec.errors)
        } else {
            meta
        }
    }

    fn error_meaning(&self, code: &str) -> Option<ErrorMeaning> {
        let errors = &self.spec.errors;
        if errors.reauthorize.iter().any(|c| c == code) {
            Some(ErrorMeaning::Reauthorize)
        } else if errors.bad_client.iter().any(|c| c == code) {
            Some(ErrorMeaning::BadClient)
        } else {
            None
        }
    }

    fn rejects_token(&self, response: &ResourceResponse<'_>) -> bool {
        let errors = &self.spec.errors;
        if !errors.bad_token_statuses.contains(&response.status) {
            return false;
        }
        if response.is_rfc6750_invalid_token() {
            return true;
        }
        if errors.bad_token_codes.is_empty() {
            // The provider documents the status alone as the signal.
            return response.status == 401;
        }
        response::error_code(response.body, errors.format)
            .is_some_and(|(code, _)| errors.bad_token_codes.contains(&code))
    }

    fn token_extras(&self, extras: &serde_json::Map<String, Value>) -> BTreeMap<String, Value> {
        extras
            .iter()
            .filter(|(name, _)| name.as_str() != "id_token")
            .map(|(k, v)| (k.clone(), without_credentials(v)))
            .collect()
    }

    fn parse_scopes(&self, scopes: Vec<String>) -> Vec<String> {
        let separator = self.spec.scopes.separator.as_str();
        if separator == " " {
            return scopes;
        }
        scopes
            .iter()
            .flat_map(|s| s.split(separator))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn introspection_request(
        &self,
        context: &IntrospectionContext<'_>,
    ) -> Option<crate::HttpRequest> {
        let access = context.token.access_token().expose_secret();
        let (field, bearer) = match self.spec.endpoints.introspect_style {
            IntrospectStyle::Rfc7662 => return None,
            IntrospectStyle::GoogleTokeninfo => ("access_token", false),
            IntrospectStyle::Bearer => ("token", true),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(field, access)
            .finish();
        let mut request = http::Request::post(context.endpoint.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        if bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {access}"));
        }
        request.body(body.into_bytes()).ok()
    }

    fn parse_introspection(&self, response: &ResponseMeta) -> Result<Introspection> {
        if self.spec.endpoints.introspect_style != IntrospectStyle::GoogleTokeninfo {
            return parse_rfc7662(response);
        }
        let value: Value = serde_json::from_slice(&response.body).map_err(|e| {
            auth_core::Error::protocol(
                Some(response.status.as_u16()),
                format!("the tokeninfo answer is not JSON ({e})"),
                "",
            )
        })?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let mut info = Introspection::active(
            text("scope")
                .unwrap_or_default()
                .split_whitespace()
                .map(GrantedScope::new)
                .collect(),
        );
        info.client_id = text("aud").or_else(|| text("azp"));
        info.subject = text("sub");
        info.expires_at = value.get("exp").and_then(epoch_seconds_or_millis);
        info.token_type = Some("access_token".to_owned());
        if let Some(access_type) = value.get("access_type") {
            info.extras
                .insert("access_type".to_owned(), access_type.clone());
        }
        Ok(info)
    }

    fn introspection_error_means_inactive(&self, response: &ResponseMeta) -> bool {
        self.spec.endpoints.introspect_style == IntrospectStyle::GoogleTokeninfo
            && response.status == http::StatusCode::BAD_REQUEST
    }

    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        let account = &self.spec.account;
        if account.from != AccountFrom::Token {
            return None;
        }
        let path = account.path();
        let (root, rest) = path.split_first()?;
        let value = token.extras().get(*root)?;
        let id = at_path(value, rest)?;
        AccountId::new(id.as_ref()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(name: &str) -> CatalogueHooks {
        CatalogueHooks::new(Arc::new(auth_catalogue::lookup(name).unwrap().clone()))
    }

    #[test]
    fn a_retired_entry_names_its_successor_and_an_active_one_is_not_retired() {
        let fitbit = hooks("fitbit").retirement().expect("fitbit is retired");
        assert_eq!(fitbit.successor, "google-health");
        assert!(fitbit.notice.is_some_and(|n| n.contains("Google Health")));
        assert_eq!(hooks("google-health").retirement(), None);
    }
}
