//! The hash chain: a canonical serialisation of an event and its SHA-256.
//!
//! The canonical form is specified in `docs/store.md` ("Hash chain"); this module is its
//! reference implementation. It is computed from JSON *values*, not from the text that was sent,
//! because PostgreSQL's `jsonb` does not keep the original text (key order, whitespace).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// `prev_hash` of the first event of every stream: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separator: the first element of the hashed array, so that a future change of the
/// canonical form cannot produce the same bytes as this one.
const CANONICAL_FORM: &str = "omorg-event/1";

/// The fields of an event that its hash covers.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    /// Stream the event belongs to.
    pub stream_id: &'a str,
    /// 1-based version in the stream.
    pub stream_version: u64,
    /// The event's type name.
    pub event_type: &'a str,
    /// The event's schema version.
    pub event_version: &'a str,
    /// The event as stored (before any upcasting), as canonical JSON text ([`canonical_json`]).
    pub payload: &'a str,
    /// The stored metadata object, as canonical JSON text.
    pub metadata: &'a str,
    /// When it was recorded (microsecond precision: what both databases keep).
    pub recorded_at: &'a DateTime<Utc>,
    /// Hash of the previous event in the stream, or [`GENESIS_HASH`].
    pub prev_hash: &'a str,
}

/// The canonical text of a recorded-at time: RFC 3339, UTC, `Z`, exactly six fraction digits.
pub fn canonical_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The lowercase hex SHA-256 of the canonical form of `input`.
pub fn event_hash(input: &HashInput<'_>) -> String {
    let mut text = String::with_capacity(256 + input.payload.len() + input.metadata.len());
    text.push('[');
    write_string(&mut text, CANONICAL_FORM);
    text.push(',');
    write_string(&mut text, input.stream_id);
    // Infallible: writing to a String cannot fail.
    let _ = write!(text, ",{},", input.stream_version);
    write_string(&mut text, input.event_type);
    text.push(',');
    write_string(&mut text, input.event_version);
    text.push(',');
    // Taken as text: the store binds the same canonical text for the database, so each value
    // is serialised once per append.
    text.push_str(input.payload);
    text.push(',');
    text.push_str(input.metadata);
    text.push(',');
    write_string(&mut text, &canonical_time(input.recorded_at));
    text.push(',');
    write_string(&mut text, input.prev_hash);
    text.push(']');
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Canonical JSON of a value (see docs/store.md): no whitespace, object keys sorted by their
/// UTF-8 bytes, numbers as serde_json writes them, strings with minimal escaping.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // Negative zero as zero: PostgreSQL's numeric (behind jsonb) has no negative zero.
        Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => out.push_str("0.0"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map order depends on a cargo feature
            // (`preserve_order`) that any crate in the build may switch on.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_canonical(out, item);
            }
            out.push('}');
        }
    }
}

/// A JSON string: `"` and `\` escaped with a backslash; U+0008, U+0009, U+000A, U+000C, U+000D as
/// `\b \t \n \f \r`; other code points below U+0020 as `\u00xx` (lowercase hex); all else as is.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Runs that need no escape are copied whole: every escaped character is ASCII, so a byte
    // below 0x80 is a character of its own and a slice boundary next to it is a char boundary.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0C => "\\f",
            b'\r' => "\\r",
            0x00..=0x1F => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_escapes_like_serde_json() {
        let v = json!({"b": [1, 2.5, null], "a": {"z": true, "é": "x\"\n\u{1}"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"z":true,"é":"x\"\n\u0001"},"b":[1,2.5,null]}"#
        );
        // Our string escaping is the same as serde_json's, so a plain to_string of a value
        // without objects agrees with the canonical form.
        let s = json!(["x\"\n\u{1}\u{7f}é\\", 1e-7, 3.0, -4, u64::MAX]);
        assert_eq!(canonical_json(&s), s.to_string());
    }

    proptest::proptest! {
        /// Any string is escaped exactly as serde_json escapes it.
        #[test]
        fn strings_are_escaped_like_serde_json(s in "(?s).{0,40}", t in "[\\x00-\\x7f]{0,40}") {
            for s in [s, t] {
                let mut out = String::new();
                write_string(&mut out, &s);
                proptest::prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
            }
        }
    }

    /// The hash of one fixed event, as every release so far computed it: stored chains must
    /// keep verifying, so a change to how the hash is computed must not change this value.
    #[test]
    fn the_hash_of_a_known_event_is_pinned() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time");
        let payload = json!({"context": {"command_id": "c-1", "effective_from": "2020-01-01",
            "decision": {"case_number": "19/1", "title": "Bydel \"Nord\"\n"}},
            "change": {"UnitRenamed": {"unit": "alna", "name": "Bydel Alna – øst", "n": -0.0}}});
        let metadata =
            json!({"command_id": "c-1", "actor": "ola", "decision": {"body": "Bystyret"}});
        let (payload, metadata) = (canonical_json(&payload), canonical_json(&metadata));
        let input = HashInput {
            stream_id: "oslo",
            stream_version: 7,
            event_type: "UnitRenamed",
            event_version: "1",
            payload: &payload,
            metadata: &metadata,
            recorded_at: &t,
            prev_hash: GENESIS_HASH,
        };
        // Cross-checked outside Rust: Python's json.dumps(sort_keys=True, separators=(",", ":"),
        // ensure_ascii=False) of the same array, with -0.0 written as 0.0, hashes to this too.
        assert_eq!(
            event_hash(&input),
            "64160921b308c6da1a0c38605fe0f904277068490f479dca49693baa783da9bb"
        );
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(canonical_json(&json!([-0.0, 0.0, 0])), "[0.0,0.0,0]");
    }

    #[test]
    fn hash_is_stable_and_covers_every_field() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time");
        let payload = canonical_json(&json!({"Deposited": {"amount": 5}}));
        let metadata = canonical_json(&json!({"command_id": "c1"}));
        let base = HashInput {
            stream_id: "s",
            stream_version: 1,
            event_type: "Deposited",
            event_version: "1",
            payload: &payload,
            metadata: &metadata,
            recorded_at: &t,
            prev_hash: GENESIS_HASH,
        };
        let h = event_hash(&base);
        assert_eq!(h.len(), 64);
        assert_eq!(h, event_hash(&base));
        let other_payload = canonical_json(&json!({"Deposited": {"amount": 6}}));
        let t2 = DateTime::from_timestamp_micros(1_700_000_000_123_457).expect("valid time");
        let variants = [
            HashInput {
                stream_id: "t",
                ..base
            },
            HashInput {
                stream_version: 2,
                ..base
            },
            HashInput {
                event_type: "X",
                ..base
            },
            HashInput {
                event_version: "2",
                ..base
            },
            HashInput {
                payload: &other_payload,
                ..base
            },
            HashInput {
                metadata: &payload,
                ..base
            },
            HashInput {
                recorded_at: &t2,
                ..base
            },
            HashInput {
                prev_hash: "ab",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(event_hash(&v), h, "{v:?}");
        }
        assert_eq!(canonical_time(&t), "2023-11-14T22:13:20.123456Z");
    }
}
