//! [`Field`]: what the server said about one field — nothing, `null`, a value, or a value of
//! an unexpected type — so a typed view never turns "absent" into `null` or drops a value it
//! could not read. [`Count`] reads integers the server sends as numbers or as strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// One field of a server object. Serialised as what was received (`Absent` fields are skipped
/// by the structs that hold them), so the typed view never says more or less than the server.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// The key was not in the object.
    #[default]
    Absent,
    /// The key was there with `null`.
    Null,
    /// The key held a value of the expected type.
    Value(T),
    /// The key held a value of another type: kept as sent rather than lost. Boxed: it is rare,
    /// and inline it would make every field of every message 80 bytes instead of 32.
    Unexpected(Box<Value>),
}

impl<T> Field<T> {
    /// Whether the field was left out.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// The value, when the server sent one of the expected type.
    pub fn get(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The value, when the server sent one of the expected type.
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T> Field<Vec<T>> {
    /// The list's items; none when the list was absent, null or of another type.
    pub fn items(&self) -> &[T] {
        self.get().map_or(&[], Vec::as_slice)
    }
}

impl Field<String> {
    /// The value as `&str`, when the server sent a string.
    pub fn as_deref(&self) -> Option<&str> {
        self.get().map(String::as_str)
    }
}

impl<T> From<T> for Field<T> {
    fn from(v: T) -> Self {
        Self::Value(v)
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Self::Null,
            v => match T::deserialize(&v) {
                Ok(t) => Self::Value(t),
                Err(_) => Self::Unexpected(Box::new(v)),
            },
        })
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Absent | Self::Null => s.serialize_none(),
            Self::Value(v) => v.serialize(s),
            Self::Unexpected(v) => v.serialize(s),
        }
    }
}

/// An integer that some routes send as a string (`memberCount: "2"` in lists, `2` elsewhere).
/// The typed view holds the number; the verbatim body keeps what was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Count(pub i64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_i64().map(Count).ok_or_else(|| D::Error::custom("not an integer")),
            Value::String(s) => s.trim().parse().map(Count).map_err(|_| D::Error::custom("not an integer")),
            _ => Err(D::Error::custom("not an integer")),
        }
    }
}

/// A struct read from a server object: every field a [`Field`] (absent, null, value or
/// unexpected), camelCase in and snake_case out, and every key this version does not know
/// kept in `extra` under its own name.
macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
        pub struct $name {
            // The fields are the server's JSON keys (snake_case), each documented at the call site.
            $($(#[$fm])* #[serde(default, skip_serializing_if = "Field::is_absent")] pub $f: Field<$t>,)*
            /// Keys this version does not know, kept as sent (name and value).
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }
    };
}
pub(crate) use wire_struct;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    wire_struct! {
        pub struct Probe { member_count: Count, name: String }
    }

    #[test]
    fn absent_null_value_and_unexpected_are_kept_apart() {
        let p: Probe = serde_json::from_value(json!({"memberCount": "12", "name": null, "zeta": [1]})).unwrap();
        assert_eq!((p.member_count.get(), p.name.clone()), (Some(&Count(12)), Field::Null));
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"member_count": 12, "name": null, "zeta": [1]}));
        let p: Probe = serde_json::from_value(json!({"name": 5})).unwrap();
        assert_eq!(p.member_count, Field::Absent);
        assert_eq!(p.name, Field::Unexpected(Box::new(json!(5))));
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"name": 5}));
    }
}
