//! Turning what the server answered into the auth-core error taxonomy.
//!
//! Classification looks at the status first (410, 429, 5xx mean the same
//! everywhere), then at the error code the provider's [`Hooks`] parse from
//! the body, then at the status again. Server text passes through
//! [`auth_core::redact`] with the secrets of the request, because servers
//! quote what they were sent.

use auth_core::{Error, ProviderId, Sent, redact};

use crate::hooks::{ErrorMeaning, Hooks, ServerError};
use crate::http::{HttpError, ResponseMeta};

/// Everything classification needs to know about the request.
pub(crate) struct Context<'a> {
    pub(crate) provider: &'a ProviderId,
    pub(crate) endpoint: &'static str,
    pub(crate) hooks: &'a dyn Hooks,
    pub(crate) secrets: &'a [&'a str],
}

/// A short, redacted excerpt of a body.
pub(crate) fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    redact::redact(text.trim(), secrets)
}

impl Context<'_> {
    fn say(&self, text: &str) -> String {
        redact::redact(text, self.secrets)
    }

    /// No complete response came back.
    pub(crate) fn transport(&self, err: &HttpError) -> Error {
        match err {
            HttpError::BodyTooLarge { limit } => Error::protocol(
                None,
                format!(
                    "the {} endpoint of {} sent a response larger than {limit} bytes; refusing to read it",
                    self.endpoint, self.provider
                ),
                "",
            ),
            // A request that could not be built or connect never left
            // this host; anything later may have been processed.
            HttpError::InvalidRequest(cause) => Error::not_sent(format!(
                "the request to the {} endpoint of {} could not be sent ({}); nothing was sent",
                self.endpoint,
                self.provider,
                self.say(cause)
            )),
            HttpError::Connect(cause) => Error::not_sent(format!(
                "could not reach the {} endpoint of {} ({}); nothing was sent",
                self.endpoint,
                self.provider,
                self.say(cause)
            )),
            HttpError::Transport(cause) => Error::transient(format!(
                "no answer from the {} endpoint of {} ({}); the outcome is unknown, so the same \
                 request may be retried",
                self.endpoint,
                self.provider,
                self.say(cause)
            )),
        }
    }

    /// An answer that means "try again later" (busy, down, or another
    /// refresh in flight): transient, possibly processed, with the status
    /// and the wait the server asks for.
    fn try_again_later(&self, meta: &ResponseMeta, message: String) -> Error {
        Error::Transient {
            sent: Sent::Unknown,
            message,
            status: Some(meta.status.as_u16()),
            retry_after: self.hooks.retry_after(meta),
            source: None,
        }
    }

    /// The server answered, but not with what the operation expected.
    pub(crate) fn response(&self, meta: &ResponseMeta) -> Error {
        let status = meta.status.as_u16();
        let server = self.hooks.parse_error(meta);
        let detail = server
            .as_ref()
            .map(|e| self.describe(e))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let where_ = format!("the {} endpoint of {}", self.endpoint, self.provider);
        if status == 410 {
            let retirement = self.hooks.retirement();
            let (successor, notice) = match retirement {
                Some(r) => (r.successor, r.notice),
                None => ("a successor".to_owned(), None),
            };
            return Error::ProviderRetired {
                provider: self.provider.clone(),
                successor,
                // The provider's own notice says it better than a 410 body.
                message: match notice {
                    Some(notice) => format!("{where_} answered 410 Gone. {notice}"),
                    None => format!("{where_} answered 410 Gone ({detail})"),
                },
            };
        }
        if status == 429 || meta.status.is_server_error() {
            return self.try_again_later(meta, format!("{where_} answered {detail}"));
        }
        if status == 409 {
            // Whatever the body says, a conflict on a token endpoint means
            // another refresh of this grant is in flight (Fitbit documents
            // it so): the caller reloads and tries again.
            return self.try_again_later(
                meta,
                format!(
                    "{where_} answered 409 Conflict ({detail}): another refresh of this grant is in flight"
                ),
            );
        }
        if let Some(server) = &server {
            match self.hooks.error_meaning(&server.code) {
                Some(ErrorMeaning::Reauthorize) => {
                    return Error::reauthorization_required(
                        None,
                        format!("{where_} refused the grant ({detail})"),
                    );
                }
                Some(ErrorMeaning::BadClient) => {
                    return Error::configuration(format!(
                        "{where_} rejected the client credentials ({detail}); check the client id, \
                         the secret and the authentication method"
                    ));
                }
                None => {}
            }
            match server.code.as_str() {
                // Only a refused grant flags the account: the manager
                // flags every account it sees this for, so an answer that
                // may be about the client must not land here.
                "invalid_grant" => {
                    return Error::reauthorization_required(
                        None,
                        format!("{where_} refused the grant ({detail})"),
                    );
                }
                // Ambiguous on an authorization server: a bad client (a
                // wrong secret, a Google `UNAUTHENTICATED`) answers so for
                // every account alike. Nothing is flagged.
                "invalid_token" | "expired_token" => {
                    return Error::configuration(format!(
                        "{where_} refused the request ({detail}); a token endpoint says this for \
                         a client it does not accept, so check the client id, the secret and the \
                         endpoint; no account was flagged"
                    ));
                }
                "invalid_client" | "unauthorized_client" => {
                    return Error::configuration(format!(
                        "{where_} rejected the client credentials ({detail}); check the client id, \
                         the secret and the authentication method"
                    ));
                }
                "invalid_request"
                | "invalid_scope"
                | "unsupported_grant_type"
                | "unsupported_response_type"
                | "unsupported_token_type"
                | "redirect_uri_mismatch" => {
                    return Error::configuration(format!(
                        "{where_} rejected the request ({detail}); check the provider configuration"
                    ));
                }
                "access_denied" => {
                    return Error::AuthorizationDenied {
                        error: server.code.clone(),
                        description: server.description.as_deref().map(|d| self.say(d)),
                    };
                }
                "temporarily_unavailable" | "server_error" => {
                    return self.try_again_later(meta, format!("{where_} answered {detail}"));
                }
                _ => {}
            }
        }
        match status {
            401 | 403 => Error::configuration(format!(
                "{where_} refused the request with {detail}; check the client credentials and scopes"
            )),
            300..=399 => Error::protocol(
                Some(status),
                format!(
                    "{where_} answered with a redirect{}; redirects are never followed, check the endpoint URL",
                    meta.headers
                        .get(http::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(|l| format!(" to {}", self.say(l)))
                        .unwrap_or_default()
                ),
                excerpt(&meta.body, self.secrets),
            ),
            200..=299 => Error::protocol(
                Some(status),
                format!("{where_} sent a success response this client cannot read"),
                excerpt(&meta.body, self.secrets),
            ),
            _ => Error::protocol(
                Some(status),
                format!("{where_} answered {detail} without a recognizable error body"),
                excerpt(&meta.body, self.secrets),
            ),
        }
    }

    fn describe(&self, e: &ServerError) -> String {
        match &e.description {
            Some(d) => format!("{}: {}", e.code, self.say(d)),
            None => e.code.clone(),
        }
    }
}
