//! Which keys each kind takes, read from the shapes' serde derives, and the
//! message for a key a section's kind does not take: the kinds it belongs
//! to, or (for a key no kind takes) the keys this kind accepts.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use toml::Table;

use super::ProviderKind;
use super::section::Section;
use super::shapes::{CatalogueSection, Common, FitbitSection, GoogleHealthSection, OAuth2Section};
use crate::exit::CliResult;

/// The field names `T`'s derived `Deserialize` asks for. A struct's derive
/// names its fields to `deserialize_struct`; this deserializer keeps them
/// and deserializes nothing.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The recorder always fails, after recording.
    let _ = T::deserialize(FieldRecorder(&mut fields));
    fields
}

/// A deserializer that records the fields a struct asks for.
struct FieldRecorder<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldRecorder<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's field names are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only a struct's field names are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The keys every kind takes (besides `kind`).
pub(super) fn common_keys() -> &'static [&'static str] {
    fields_of::<Common>()
}

/// The keys only `kind` (and the kinds sharing them) takes.
pub(super) fn shape_keys(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Fitbit => fields_of::<FitbitSection>(),
        ProviderKind::GoogleHealth => fields_of::<GoogleHealthSection>(),
        ProviderKind::OAuth2 => fields_of::<OAuth2Section>(),
        ProviderKind::Catalogue => fields_of::<CatalogueSection>(),
    }
}

/// Every key `kind` takes, `kind` first, in the order the shapes declare
/// them.
pub(super) fn accepted_keys(kind: ProviderKind) -> Vec<&'static str> {
    let mut keys = vec!["kind"];
    keys.extend_from_slice(common_keys());
    keys.extend_from_slice(shape_keys(kind));
    keys
}

/// How messages name a kind: `kind = "fitbit"`, or for a catalogue entry
/// the name written in the section.
pub(super) fn describe(kind: ProviderKind, written: &str) -> String {
    match kind {
        ProviderKind::Catalogue => format!("kind = {written:?} (a catalogue entry)"),
        _ => format!("kind = {written:?}"),
    }
}

/// How messages name the kinds a key belongs to.
fn owner(kind: ProviderKind) -> String {
    match kind {
        ProviderKind::Catalogue => "catalogue entries".to_owned(),
        _ => format!("kind = {:?}", kind.as_str()),
    }
}

/// Fails on the first key of `table` (other than `kind`) that `kind` does
/// not take. `written` is the `kind` as the section wrote it.
pub(super) fn check(
    section: &Section<'_>,
    kind: ProviderKind,
    written: &str,
    table: &Table,
) -> CliResult {
    let accepted = accepted_keys(kind);
    let Some(key) = table.keys().find(|key| !accepted.contains(&key.as_str())) else {
        return Ok(());
    };
    let owners: Vec<String> = ProviderKind::ALL
        .into_iter()
        .filter(|other| *other != kind && shape_keys(*other).contains(&key.as_str()))
        .map(owner)
        .collect();
    let this = describe(kind, written);
    if owners.is_empty() {
        let listed = accepted
            .iter()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let guess = closest(key, &accepted)
            .map(|near| format!(" (did you mean `{near}`?)"))
            .unwrap_or_default();
        return Err(section.error_then(
            key,
            format!("unknown field{guess}; {this} accepts {listed}"),
            format!(
                "fix or remove `{key}` in the [providers.{}] section of {}",
                section.name, section.file
            ),
        ));
    }
    Err(section.error_then(
        key,
        format!(
            "does not apply to {this}; it is a field of {}; remove it",
            join_or(&owners)
        ),
        format!(
            "remove `{key}` from the [providers.{}] section of {}, or change its kind",
            section.name, section.file
        ),
    ))
}

/// `a`, `a or b`, `a, b or c`.
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The accepted key nearest to `key`, when it is near enough to be a typo
/// of it (at most two edits, and fewer than half of its letters).
fn closest<'a>(key: &str, accepted: &[&'a str]) -> Option<&'a str> {
    accepted
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2 && distance * 2 < key.chars().count())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The Levenshtein distance between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_lists_come_from_the_shapes() {
        assert!(common_keys().contains(&"client_id"));
        assert!(shape_keys(ProviderKind::Fitbit).contains(&"app_type"));
        assert!(shape_keys(ProviderKind::OAuth2).contains(&"grant"));
        assert!(!shape_keys(ProviderKind::GoogleHealth).contains(&"grant"));
        assert_eq!(accepted_keys(ProviderKind::Catalogue)[0], "kind");
    }

    #[test]
    fn no_shape_repeats_a_common_key() {
        for kind in ProviderKind::ALL {
            for key in shape_keys(kind) {
                assert!(!common_keys().contains(key), "{key} of {kind:?}");
            }
        }
    }

    #[test]
    fn a_typo_finds_its_key() {
        assert_eq!(edit_distance("scoops", "scopes"), 2);
        assert_eq!(edit_distance("app_typo", "app_type"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        let keys = accepted_keys(ProviderKind::Fitbit);
        assert_eq!(closest("scoops", &keys), Some("scopes"));
        assert_eq!(closest("app_typo", &keys), Some("app_type"));
        assert_eq!(closest("zz", &keys), None);
    }
}
