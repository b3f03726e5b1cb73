use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bytes that travel as a standard, padded base64 string (RFC 4648).
///
/// Backed by [`Bytes`] so that output chunks can be shared between the retention buffer and
/// in-flight notifications without copying.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Base64Bytes(pub Bytes);

impl Base64Bytes {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl std::ops::Deref for Base64Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(v: Vec<u8>) -> Self {
        Base64Bytes(Bytes::from(v))
    }
}

impl From<Bytes> for Base64Bytes {
    fn from(b: Bytes) -> Self {
        Base64Bytes(b)
    }
}

impl From<&[u8]> for Base64Bytes {
    fn from(b: &[u8]) -> Self {
        Base64Bytes(Bytes::copy_from_slice(b))
    }
}

impl From<&str> for Base64Bytes {
    fn from(s: &str) -> Self {
        Base64Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct B64Visitor;
        impl Visitor<'_> for B64Visitor {
            type Value = Base64Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a standard padded base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Base64Bytes, E> {
                STANDARD
                    .decode(v)
                    .map(Base64Bytes::from)
                    .map_err(|e| E::custom(format!("invalid base64: {e}")))
            }
        }
        deserializer.deserialize_str(B64Visitor)
    }
}

impl schemars::JsonSchema for Base64Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Base64Bytes".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "contentEncoding": "base64",
            "description": "Bytes as a standard, padded base64 string (RFC 4648)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte_value() {
        let all: Vec<u8> = (0..=255u8).collect();
        let json = serde_json::to_string(&Base64Bytes::from(all.clone())).unwrap();
        let back: Base64Bytes = serde_json::from_str(&json).unwrap();
        assert_eq!(&back[..], &all[..]);
    }

    #[test]
    fn rejects_invalid_base64() {
        let err = serde_json::from_str::<Base64Bytes>("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }
}
