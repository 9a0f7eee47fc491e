//! Making server text safe to put in an error or a log.
//!
//! Servers echo what they were sent: Fitbit's `invalid_grant` message quotes
//! the refresh token it refused. Every piece of server text that reaches an
//! [`Error`](crate::Error) goes through [`redact`] first, which removes the
//! secrets the caller knows about and anything else shaped like a token, and
//! bounds the length.

/// The longest excerpt kept, in characters.
pub const MAX_EXCERPT_CHARS: usize = 200;

/// Runs of token-like characters at least this long are treated as secrets.
const TOKEN_RUN: usize = 24;

const REDACTED: &str = "[redacted]";

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '=')
}

/// Returns `text` with every occurrence of `secrets` replaced, every run of
/// at least 24 token-like characters replaced, and the result cut to
/// [`MAX_EXCERPT_CHARS`] characters (with `…` when cut).
///
/// ```
/// let text = "Refresh token invalid: c643a63c072f0f05478e9d18b991db80ef6061e4f8e6c822d83fed53e5fafdd7.";
/// let safe = auth_core::redact::redact(text, &[]);
/// assert_eq!(safe, "Refresh token invalid: [redacted].");
/// ```
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret) {
            text = text.replace(secret, REDACTED);
        }
    }
    let mut out = String::with_capacity(text.len().min(MAX_EXCERPT_CHARS + 16));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        // A long word is not a token unless it mixes digits in: keep messages
        // readable while catching opaque values. '/' splits runs, so URL
        // paths stay readable too.
        // A sentence's full stop is not part of the token before it.
        let body = run.trim_end_matches('.');
        let looks_secret =
            body.chars().count() >= TOKEN_RUN && body.chars().any(|c| c.is_ascii_digit());
        if looks_secret {
            out.push_str(REDACTED);
            out.push_str(&run[body.len()..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    truncate(&out, MAX_EXCERPT_CHARS)
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_known_secrets_even_short_ones() {
        assert_eq!(
            redact("bad secret: abc", &["abc"]),
            "bad secret: [redacted]"
        );
    }

    #[test]
    fn removes_token_shaped_runs_and_keeps_words() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIyNkZXRkwifQ.abc123def456";
        let out = redact(
            &format!(
                "Access token invalid: {jwt}. Visit https://dev.fitbit.com/docs/oauth2 for more"
            ),
            &[],
        );
        assert!(!out.contains("eyJ"), "{out}");
        assert!(out.contains("https://dev.fitbit.com/docs/oauth2"), "{out}");
    }

    #[test]
    fn bounds_length() {
        let out = redact(&"word ".repeat(200), &[]);
        assert_eq!(out.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert!(out.ends_with('…'));
    }
}
