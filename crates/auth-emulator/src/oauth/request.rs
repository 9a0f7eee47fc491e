//! One request as the endpoint handlers see it: method, headers, query and
//! body, read whole before any handler runs.

use http::{HeaderMap, Method};

use crate::oauth::params::Params;

/// One request as the endpoint handlers see it.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) query: String,
    pub(crate) body: String,
}

impl Request {
    /// The `Authorization` header, if present and readable.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The bearer token of the `Authorization` header.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let (scheme, token) = self.authorization()?.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The query parameters.
    pub(crate) fn query_params(&self) -> Result<Params, String> {
        Params::parse(&self.query)
    }

    /// The form body parameters. A non-empty body must be declared as
    /// `application/x-www-form-urlencoded`, as both servers require.
    pub(crate) fn form_params(&self) -> Result<Params, String> {
        if self.body.is_empty() {
            return Ok(Params::default());
        }
        let is_form = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(String::from(
                "The request body must be application/x-www-form-urlencoded.",
            ));
        }
        Params::parse(&self.body).map_err(|name| format!("Repeated parameter: {name}"))
    }

    /// The query and, for a POST, the form body (which wins on a clash).
    pub(crate) fn query_and_form_params(&self) -> Result<Params, String> {
        let query = self
            .query_params()
            .map_err(|name| format!("Parameter is repeated: {name}"))?;
        if self.method == Method::POST {
            Ok(self.form_params()?.merged_with(query))
        } else {
            Ok(query)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: &str) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            authorization.parse().expect("a valid header value"),
        );
        Request {
            method: Method::GET,
            headers,
            query: String::new(),
            body: String::new(),
        }
    }

    #[test]
    fn bearer_takes_any_case_and_refuses_an_empty_token() {
        assert_eq!(request("Bearer abc").bearer(), Some("abc"));
        assert_eq!(request("bearer  abc ").bearer(), Some("abc"));
        assert_eq!(request("Basic abc").bearer(), None);
        assert_eq!(request("Bearer ").bearer(), None);
    }
}
