//! PKCE (RFC 7636): parsing the challenge at authorize time and checking the
//! verifier at the code exchange. Both servers accept `S256` and `plain`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A `code_challenge_method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    S256,
    Plain,
}

/// The challenge a code is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) value: String,
    pub(crate) method: Method,
}

/// Why authorize parameters for PKCE are invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChallengeError {
    MethodWithoutChallenge,
    UnsupportedMethod,
    MalformedChallenge,
}

impl ChallengeError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ChallengeError::MethodWithoutChallenge => {
                "code_challenge_method was sent without code_challenge."
            }
            ChallengeError::UnsupportedMethod => "code_challenge_method must be S256 or plain.",
            ChallengeError::MalformedChallenge => {
                "code_challenge must be 43 to 128 characters from A-Z, a-z, 0-9, '-', '.', '_' and '~'."
            }
        }
    }
}

/// Parses the authorize parameters. No challenge means no PKCE (it is optional
/// on both servers); a challenge without a method means `plain` (RFC 7636 4.3).
pub(crate) fn parse_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<Challenge>, ChallengeError> {
    let Some(value) = challenge else {
        return match method {
            Some(_) => Err(ChallengeError::MethodWithoutChallenge),
            None => Ok(None),
        };
    };
    let method = match method {
        None | Some("plain") => Method::Plain,
        Some("S256") => Method::S256,
        Some(_) => return Err(ChallengeError::UnsupportedMethod),
    };
    if !is_well_formed(value) {
        return Err(ChallengeError::MalformedChallenge);
    }
    Ok(Some(Challenge {
        value: value.to_owned(),
        method,
    }))
}

/// Whether `verifier` satisfies `challenge`. A malformed verifier never does.
pub(crate) fn verify(challenge: &Challenge, verifier: &str) -> bool {
    if !is_well_formed(verifier) {
        return false;
    }
    match challenge.method {
        Method::Plain => verifier == challenge.value,
        Method::S256 => s256(verifier) == challenge.value,
    }
}

/// `BASE64URL(SHA256(verifier))` without padding.
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 43 to 128 characters from the unreserved set (RFC 7636 4.1 and 4.2).
fn is_well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier is the base64url form of the octets listed in RFC 7636
    /// Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn s256_and_plain_verify() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let s256 = parse_challenge(
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            Some("S256"),
        )
        .unwrap()
        .unwrap();
        assert!(verify(&s256, verifier));
        assert!(!verify(&s256, &verifier.replace('d', "e")));
        let plain = parse_challenge(Some(verifier), None).unwrap().unwrap();
        assert_eq!(plain.method, Method::Plain);
        assert!(verify(&plain, verifier));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert_eq!(
            parse_challenge(None, Some("S256")),
            Err(ChallengeError::MethodWithoutChallenge)
        );
        assert_eq!(
            parse_challenge(Some(&"a".repeat(43)), Some("S512")),
            Err(ChallengeError::UnsupportedMethod)
        );
        assert_eq!(
            parse_challenge(Some("short"), Some("S256")),
            Err(ChallengeError::MalformedChallenge)
        );
        assert_eq!(parse_challenge(None, None), Ok(None));
    }

    #[test]
    fn malformed_verifier_never_verifies() {
        let challenge = Challenge {
            value: "short".into(),
            method: Method::Plain,
        };
        assert!(!verify(&challenge, "short"));
    }
}
