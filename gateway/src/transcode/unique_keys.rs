//! Rejects JSON bodies in which an object repeats a key.
//!
//! prost-reflect keeps the last of repeated keys, as serde does; another reader (a proxy, a
//! WAF, a log pipeline) may keep the first, so a body with `{"title": "a", "title": "b"}` could
//! mean two things. protojson (grpc-gateway) rejects such bodies, and so does the gateway: a
//! second pass over a body that already parsed, without building any value. Depth is bounded by
//! serde_json's recursion limit, as in the first pass.

use std::{collections::HashSet, fmt};

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// Checks that no object in the JSON text `body` repeats a key.
///
/// # Errors
/// serde_json's error, naming the repeated key and its position.
pub(super) fn check(body: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    Unique.deserialize(&mut de)?;
    de.end()
}

/// Walks one JSON value.
struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(A::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(Unique)?;
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        assert!(check(br#"{"a": 1, "b": [{"c": 1, "d": {"c": 2}}]}"#).is_ok());
        assert!(check(br#"[1, "x", null, true, 1.5, -3]"#).is_ok());
        let top = check(br#"{"a": 1, "a": 2}"#).map_err(|e| e.to_string());
        assert!(top.is_err_and(|e| e.contains("duplicate key \"a\"")));
        assert!(check(br#"{"a": [{"b": 1, "b": 1}]}"#).is_err());
        // Escapes are decoded before comparing.
        assert!(check(br#"{"a": 1, "\u0061": 2}"#).is_err());
    }
}
