//! The scopes each server knows (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0" and "Google OAuth 2.0"). A consent
//! page refuses any other scope.

/// Legacy Fitbit scopes.
pub(crate) const FITBIT: [&str; 16] = [
    "activity",
    "blood_glucose",
    "cardio_fitness",
    "electrocardiogram",
    "heartrate",
    "irregular_rhythm_notifications",
    "location",
    "nutrition",
    "oxygen_saturation",
    "profile",
    "respiratory_rate",
    "settings",
    "sleep",
    "social",
    "temperature",
    "weight",
];

/// The prefix of every Google Health API scope.
pub(crate) const GOOGLE_HEALTH_PREFIX: &str = "https://www.googleapis.com/auth/googlehealth.";

/// Google Health data types that have read-write, `.readonly` and `.writeonly`
/// scopes.
const GOOGLE_HEALTH_TYPES: [&str; 7] = [
    "activity_and_fitness",
    "health_metrics_and_measurements",
    "location",
    "nutrition",
    "profile",
    "settings",
    "sleep",
];

/// Google Health data types that only have a `.readonly` scope.
const GOOGLE_HEALTH_READONLY_ONLY: [&str; 2] = ["ecg", "irn"];

/// OpenID Connect scopes Google accepts alongside the Health scopes.
const GOOGLE_IDENTITY: [&str; 5] = [
    "openid",
    "email",
    "profile",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
];

/// Whether `scope` is a legacy Fitbit scope.
pub(crate) fn is_fitbit(scope: &str) -> bool {
    FITBIT.contains(&scope)
}

/// Whether `scope` is a Google Health scope or an identity scope.
pub(crate) fn is_google(scope: &str) -> bool {
    if GOOGLE_IDENTITY.contains(&scope) {
        return true;
    }
    let Some(rest) = scope.strip_prefix(GOOGLE_HEALTH_PREFIX) else {
        return false;
    };
    let (data_type, variant) = match rest.split_once('.') {
        Some((t, v)) => (t, Some(v)),
        None => (rest, None),
    };
    if GOOGLE_HEALTH_READONLY_ONLY.contains(&data_type) {
        return variant == Some("readonly");
    }
    GOOGLE_HEALTH_TYPES.contains(&data_type)
        && matches!(variant, None | Some("readonly") | Some("writeonly"))
}

/// The scopes Google allows on the device flow ("OAuth 2.0 for TV and
/// Limited-Input Device Applications", section "Allowed scopes"): sign-in,
/// Drive's per-app files and YouTube. The Google Health scopes are not
/// among them.
pub(crate) const GOOGLE_DEVICE: [&str; 9] = [
    "openid",
    "email",
    "profile",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    "https://www.googleapis.com/auth/drive.appdata",
    "https://www.googleapis.com/auth/drive.file",
    "https://www.googleapis.com/auth/youtube",
    "https://www.googleapis.com/auth/youtube.readonly",
];

/// Whether Google allows `scope` on the device flow.
pub(crate) fn is_google_device(scope: &str) -> bool {
    GOOGLE_DEVICE.contains(&scope)
}

/// Every scope the Google consent page accepts, for the discovery document.
pub(crate) fn google_all() -> Vec<String> {
    let mut all: Vec<String> = GOOGLE_IDENTITY.iter().map(|s| (*s).to_owned()).collect();
    for t in GOOGLE_HEALTH_TYPES {
        for suffix in ["", ".readonly", ".writeonly"] {
            all.push(format!("{GOOGLE_HEALTH_PREFIX}{t}{suffix}"));
        }
    }
    for t in GOOGLE_HEALTH_READONLY_ONLY {
        all.push(format!("{GOOGLE_HEALTH_PREFIX}{t}.readonly"));
    }
    all
}

/// Splits a space-delimited scope parameter, dropping empty items and
/// duplicates but keeping the order.
pub(crate) fn split(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Fitbit's introspection scope format: `{ACTIVITY=READ_WRITE, SLEEP=READ_WRITE}`.
pub(crate) fn fitbit_braces(scopes: &[String]) -> String {
    let items: Vec<String> = scopes
        .iter()
        .map(|s| format!("{}=READ_WRITE", s.to_ascii_uppercase()))
        .collect();
    format!("{{{}}}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_scopes() {
        assert!(is_google(
            "https://www.googleapis.com/auth/googlehealth.sleep.readonly"
        ));
        assert!(is_google(
            "https://www.googleapis.com/auth/googlehealth.activity_and_fitness"
        ));
        assert!(is_google(
            "https://www.googleapis.com/auth/googlehealth.nutrition.writeonly"
        ));
        assert!(is_google(
            "https://www.googleapis.com/auth/googlehealth.ecg.readonly"
        ));
        assert!(!is_google(
            "https://www.googleapis.com/auth/googlehealth.ecg"
        ));
        assert!(!is_google(
            "https://www.googleapis.com/auth/googlehealth.steps.readonly"
        ));
        assert!(!is_google(
            "https://www.googleapis.com/auth/fitness.activity.read"
        ));
        assert!(is_google("openid"));
        assert!(!is_google("sleep"));
        assert!(google_all().iter().all(|s| is_google(s)));
    }

    #[test]
    fn braces_format() {
        let scopes = vec!["activity".to_owned(), "sleep".to_owned()];
        assert_eq!(
            fitbit_braces(&scopes),
            "{ACTIVITY=READ_WRITE, SLEEP=READ_WRITE}"
        );
    }

    #[test]
    fn split_drops_duplicates_and_blanks() {
        assert_eq!(split(" sleep  activity sleep"), vec!["sleep", "activity"]);
    }
}
