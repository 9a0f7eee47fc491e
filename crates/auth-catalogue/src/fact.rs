//! Facts that may be unknown, and the durations they are written in.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A fact about a provider as its documentation states it, or `"unknown"`
/// when the documentation does not say.
///
/// In TOML a known fact is written as its value (`rotates = true`); an
/// unknown one as the string `"unknown"` (`rotates = "unknown"`). Code
/// that acts on a fact reads the safe value when it is unknown (see
/// [`RefreshSpec::rules`](crate::RefreshSpec::rules)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fact<T> {
    /// The documentation states this value.
    Known(T),
    /// The documentation does not say, or says it ambiguously.
    #[default]
    Unknown,
}

impl<T: Copy> Fact<T> {
    /// The value, or `safe` when unknown.
    pub fn or(self, safe: T) -> T {
        match self {
            Self::Known(value) => value,
            Self::Unknown => safe,
        }
    }

    /// The value, if known.
    pub fn known(self) -> Option<T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Unknown => None,
        }
    }
}

impl<T: fmt::Display> fmt::Display for Fact<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(value) => value.fmt(f),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Fact<bool> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Fact<bool>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"unknown\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Fact::Known(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "unknown" {
                    Ok(Fact::Unknown)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for Fact<bool> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(v) => serializer.serialize_bool(*v),
            Self::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Fact<Span> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Fact<Span>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "\"none\", \"unknown\" or a duration such as \"90d\", \"8h\", \"2m\", \"30s\"",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "unknown" => Ok(Fact::Unknown),
                    "none" => Ok(Fact::Known(Span::None)),
                    other => parse_duration(other)
                        .map(|d| Fact::Known(Span::After(d)))
                        .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for Fact<Span> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A span of time that may not exist: a replay window, a lifetime, an idle
/// limit. `"none"` in TOML: there is no window, the token never expires,
/// there is no idle limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// No such span: no window, no expiry, no limit.
    None,
    /// This long.
    After(Duration),
}

impl Span {
    /// The duration, if there is one.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Self::None => None,
            Self::After(d) => Some(d),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::After(d) => f.write_str(&format_duration(*d)),
        }
    }
}

/// A duration written as one number and one unit: `30s`, `2m`, `8h`,
/// `90d`. Written back the same way by [`format_duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Seconds).ok_or_else(|| {
            de::Error::invalid_value(
                de::Unexpected::Str(&text),
                &"a duration such as \"90d\", \"8h\", \"2m\" or \"30s\"",
            )
        })
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

/// Parses `<number><unit>` with unit `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Writes a duration in the largest unit that divides it: `90d`, `8h`,
/// `2m`, `30s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [("30s", 30), ("2m", 120), ("8h", 28_800), ("90d", 7_776_000)] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d.as_secs(), secs);
            assert_eq!(format_duration(d), text);
        }
        for bad in ["", "d", "5", "5w", "-5s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unknown_reads_the_safe_value() {
        assert!(Fact::<bool>::Unknown.or(true));
        assert!(!Fact::Known(false).or(true));
        assert_eq!(Fact::<bool>::Unknown.to_string(), "unknown");
    }
}
