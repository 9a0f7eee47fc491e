//! [`Scope`]: Fitbit's OAuth scopes, parsed leniently.

use std::fmt;
use std::str::FromStr;

/// A legacy Fitbit scope. Parsing never fails: a scope this crate does not
/// know is kept as [`Scope::Other`], because users may be granted scopes
/// Fitbit adds later, and an app must not break on them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scope {
    /// `activity`
    Activity,
    /// `blood_glucose` (named in Google's migration mapping)
    BloodGlucose,
    /// `cardio_fitness`
    CardioFitness,
    /// `electrocardiogram`
    Electrocardiogram,
    /// `heartrate`
    Heartrate,
    /// `irregular_rhythm_notifications`
    IrregularRhythmNotifications,
    /// `location`
    Location,
    /// `nutrition`
    Nutrition,
    /// `oxygen_saturation`
    OxygenSaturation,
    /// `profile`
    Profile,
    /// `respiratory_rate`
    RespiratoryRate,
    /// `settings`
    Settings,
    /// `sleep`
    Sleep,
    /// `social`
    Social,
    /// `temperature`
    Temperature,
    /// `weight`
    Weight,
    /// A scope this crate does not know, kept as sent (lower-cased).
    Other(String),
}

impl Scope {
    /// Every known scope.
    pub const ALL: [Scope; 16] = [
        Scope::Activity,
        Scope::BloodGlucose,
        Scope::CardioFitness,
        Scope::Electrocardiogram,
        Scope::Heartrate,
        Scope::IrregularRhythmNotifications,
        Scope::Location,
        Scope::Nutrition,
        Scope::OxygenSaturation,
        Scope::Profile,
        Scope::RespiratoryRate,
        Scope::Settings,
        Scope::Sleep,
        Scope::Social,
        Scope::Temperature,
        Scope::Weight,
    ];

    /// The scope's name on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Activity => "activity",
            Self::BloodGlucose => "blood_glucose",
            Self::CardioFitness => "cardio_fitness",
            Self::Electrocardiogram => "electrocardiogram",
            Self::Heartrate => "heartrate",
            Self::IrregularRhythmNotifications => "irregular_rhythm_notifications",
            Self::Location => "location",
            Self::Nutrition => "nutrition",
            Self::OxygenSaturation => "oxygen_saturation",
            Self::Profile => "profile",
            Self::RespiratoryRate => "respiratory_rate",
            Self::Settings => "settings",
            Self::Sleep => "sleep",
            Self::Social => "social",
            Self::Temperature => "temperature",
            Self::Weight => "weight",
            Self::Other(other) => other,
        }
    }

    /// Parses one scope, in any letter case (introspection writes them in
    /// capitals). Never fails.
    pub fn parse(name: &str) -> Self {
        let lower = name.trim().to_ascii_lowercase();
        Self::ALL
            .iter()
            .find(|s| s.as_str() == lower)
            .cloned()
            .unwrap_or(Self::Other(lower))
    }

    /// Parses a space-separated list, skipping empty parts.
    pub fn parse_list(list: &str) -> Vec<Scope> {
        list.split_whitespace().map(Self::parse).collect()
    }
}

impl FromStr for Scope {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> String {
        scope.as_str().to_owned()
    }
}

/// The `prompt` values Fitbit's authorize endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// `none`: no screen; fails if consent is needed.
    None,
    /// `consent`: show the consent screen again.
    Consent,
    /// `login`: ask the user to log in again.
    Login,
    /// `login consent`: both.
    LoginConsent,
}

impl Prompt {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Consent => "consent",
            Self::Login => "login",
            Self::LoginConsent => "login consent",
        }
    }

    /// Parses a parameter value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "none" => Some(Self::None),
            "consent" => Some(Self::Consent),
            "login" => Some(Self::Login),
            "login consent" => Some(Self::LoginConsent),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_scope() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), scope);
            assert_eq!(Scope::parse(&scope.as_str().to_uppercase()), scope);
        }
    }

    #[test]
    fn unknown_scopes_are_kept() {
        assert_eq!(Scope::parse("hydration"), Scope::Other("hydration".into()));
        assert_eq!(
            Scope::parse_list(" sleep  hydration "),
            vec![Scope::Sleep, Scope::Other("hydration".into())]
        );
    }

    #[test]
    fn prompts() {
        for p in [
            Prompt::None,
            Prompt::Consent,
            Prompt::Login,
            Prompt::LoginConsent,
        ] {
            assert_eq!(Prompt::parse(p.as_str()), Some(p));
        }
        assert_eq!(Prompt::parse("select_account"), None);
    }
}
