//! Settings written as text and parsed once, when the settings load.
//!
//! A [`Parsed<T>`] holds the text as written and the `T` parsed from it. It reads from a string
//! (text that `T` refuses is a problem at the setting's own key, in `T`'s words), prints and
//! serializes as the text written (so `edgeflow config check` shows what the operator wrote, not
//! a normalized form) and has a string's JSON Schema. The code that uses the setting reads the
//! parsed value: nothing parses it again, and nothing needs a fallback for text that does not
//! parse.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A setting's text and the value parsed from it.
#[derive(Clone)]
pub struct Parsed<T> {
    text: String,
    value: T,
}

impl<T> Parsed<T> {
    /// The text as written in the settings.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl<T> Deref for Parsed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: FromStr<Err: fmt::Display>> FromStr for Parsed<T> {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse() {
            Ok(value) => Ok(Self {
                text: text.to_string(),
                value,
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl<'de, T: FromStr<Err: fmt::Display>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<T> Serialize for Parsed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<T> fmt::Display for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<T> fmt::Debug for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// A string's schema, exactly: the schema cannot say what parses, the load does.
impl<T> JsonSchema for Parsed<T> {
    fn inline_schema() -> bool {
        String::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        String::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Even(u32);

    impl FromStr for Even {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            match s.parse::<u32>() {
                Ok(n) if n % 2 == 0 => Ok(Even(n)),
                _ => Err(format!("`{s}` is not an even number")),
            }
        }
    }

    #[test]
    fn reads_the_value_once_and_prints_the_text_as_written() {
        let p: Parsed<Even> = serde_json::from_value(serde_json::json!("0042")).unwrap();
        assert_eq!(*p, Even(42));
        assert_eq!(p.to_string(), "0042");
        assert_eq!(serde_json::to_value(&p).unwrap(), "0042");
        let e = serde_json::from_value::<Parsed<Even>>(serde_json::json!("7")).unwrap_err();
        assert_eq!(e.to_string(), "`7` is not an even number");
    }
}
