//! Secret strings (API keys, tokens): redacted when printed or serialized, unless a renderer
//! that must write the value asks for it ([`expose_secrets`]).

use std::cell::Cell;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    static EXPOSE: Cell<bool> = const { Cell::new(false) };
}

/// A secret string (API key, token). `Debug` and `Display` print `<redacted>`, and so does
/// `Serialize` (which is what the gateway's `/config` dump uses), unless serialization runs
/// inside [`expose_secrets`] (for a renderer that must write the real value, e.g. the
/// controller writing a ConfigMap).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(std::sync::Arc<str>);

/// What a redacted secret serializes and prints as.
pub const REDACTED: &str = "<redacted>";

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().into())
    }

    /// The secret value, for building the upstream request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Runs `f` with secrets serializing to their real values on this thread.
pub fn expose_secrets<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSE.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(EXPOSE.with(|e| e.replace(true)));
    f()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if EXPOSE.with(|e| e.get()) {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str(REDACTED)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{base, parse};

    #[test]
    fn secrets_are_redacted_by_default() {
        let c = parse(base());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk-secret"), "{dbg}");
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            !json.contains("sk-secret") && json.contains(REDACTED),
            "{json}"
        );
        let exposed = expose_secrets(|| serde_json::to_string(&c).unwrap());
        assert!(exposed.contains("sk-secret"));
        // The scope ends with the closure.
        assert!(!serde_json::to_string(&c).unwrap().contains("sk-secret"));
    }
}
