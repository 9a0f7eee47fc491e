//! What an endpoint answers, before it becomes an HTTP response: status,
//! headers and body. Handlers build these under the state lock and never do
//! I/O; the server turns them into responses afterwards.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, RETRY_AFTER};
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use url::Url;

const JSON: &str = "application/json;charset=UTF-8";
const HTML: &str = "text/html; charset=utf-8";

/// Marker put in a response's extensions: the connection must be closed
/// instead of sending this response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

/// An endpoint's answer.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) body: String,
    pub(crate) drop_connection: bool,
}

impl Reply {
    /// A JSON body from a serializable value.
    pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Self {
        // Serializing our own plain structs and maps cannot fail.
        let body = serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"));
        Self::json_text(status, body)
    }

    /// A JSON body given as text (used to replay byte-identical answers).
    pub(crate) fn json_text(status: StatusCode, body: String) -> Self {
        Self {
            status,
            headers: vec![
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (PRAGMA, HeaderValue::from_static("no-cache")),
            ],
            content_type: Some(JSON),
            body,
            drop_connection: false,
        }
    }

    /// A 200 with an empty body (Fitbit revoke).
    pub(crate) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: None,
            body: String::new(),
            drop_connection: false,
        }
    }

    /// An HTML page with a heading and a few paragraphs (escaped here).
    pub(crate) fn html_page(status: StatusCode, title: &str, paragraphs: &[&str]) -> Self {
        let mut body = format!(
            "<!DOCTYPE html>\n<html><head><title>{}</title></head><body>\n<h1>{}</h1>\n",
            escape_html(title),
            escape_html(title)
        );
        for p in paragraphs {
            body.push_str("<p>");
            body.push_str(&escape_html(p));
            body.push_str("</p>\n");
        }
        body.push_str("</body></html>\n");
        Self::html_raw(status, body)
    }

    /// An HTML body given verbatim.
    pub(crate) fn html_raw(status: StatusCode, body: String) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: Some(HTML),
            body,
            drop_connection: false,
        }
    }

    /// A 302 redirect to `location`.
    pub(crate) fn redirect(location: &str) -> Self {
        let mut reply = Self::empty(StatusCode::FOUND);
        // A URL we serialized ourselves is always a valid header value.
        if let Ok(value) = HeaderValue::from_str(location) {
            reply.headers.push((LOCATION, value));
        }
        reply
    }

    /// A 302 redirect to `target` with `pairs` added to its query and,
    /// when given, `fragment` (Fitbit appends `_=_`).
    pub(crate) fn redirect_with(
        target: &str,
        pairs: &[(&str, String)],
        fragment: Option<&str>,
    ) -> Self {
        let location = match Url::parse(target) {
            Ok(mut url) => {
                {
                    let mut query = url.query_pairs_mut();
                    for (k, v) in pairs {
                        query.append_pair(k, v);
                    }
                }
                if fragment.is_some() {
                    url.set_fragment(fragment);
                }
                url.into()
            }
            // Registered URIs are checked when the emulator starts.
            Err(_) => target.to_owned(),
        };
        Self::redirect(&location)
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: HeaderName, value: impl ToString) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name, value));
        }
        self
    }

    /// Adds `Retry-After` in whole seconds (at least 1).
    pub(crate) fn with_retry_after(self, seconds: u64) -> Self {
        self.with_header(RETRY_AFTER, seconds.max(1))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if let Some(content_type) = self.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        if self.drop_connection {
            response.extensions_mut().insert(DropConnection);
        }
        response
    }
}

/// Escapes text for HTML element content and attribute values (`&`, `<`,
/// `>`, `"` and `'`).
pub(crate) fn escape_html(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_reflected_text() {
        let reply = Reply::html_page(StatusCode::BAD_REQUEST, "Error", &["<script>&\"'"]);
        assert!(reply.body.contains("&lt;script&gt;&amp;&quot;&#x27;"));
        assert!(!reply.body.contains("<script>"));
    }
}
