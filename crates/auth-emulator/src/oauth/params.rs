//! Request parameters from a query string or a form body. RFC 6749 section 3.1
//! forbids repeating a parameter, so a repeated one is an error rather than a
//! silent pick of one value.

use std::collections::HashMap;

/// Decoded parameters, at most one value each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text; `Err` names the first
    /// repeated parameter.
    pub(crate) fn parse(encoded: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded.as_bytes()).into_owned() {
            if map.contains_key(&name) {
                return Err(name);
            }
            map.insert(name, value);
        }
        Ok(Self(map))
    }

    /// A parameter's value; an empty value counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A parameter's value exactly as sent, even when empty.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether the parameter was sent at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Adds the parameters of `other` that `self` lacks (query + body).
    pub(crate) fn merged_with(mut self, other: Params) -> Self {
        for (k, v) in other.0 {
            self.0.entry(k).or_insert(v);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameter_is_rejected() {
        assert_eq!(Params::parse("a=1&a=2").unwrap_err(), "a");
    }

    #[test]
    fn decodes_and_treats_empty_as_absent() {
        let p = Params::parse("scope=activity+sleep&state=&x=%2F").unwrap();
        assert_eq!(p.get("scope"), Some("activity sleep"));
        assert_eq!(p.get("state"), None);
        assert_eq!(p.raw("state"), Some(""));
        assert_eq!(p.get("x"), Some("/"));
    }
}
