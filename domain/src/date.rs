//! Calendar dates as users write them: `YYYY-MM-DD` and nothing else.
//!
//! chrono's own parser is lenient: it takes `2025-1-1`, `+2025-01-01`, ` 2025-01-01` and
//! `-0001-01-01` as dates. A decision's date is copied from a document by hand, so a form that
//! is off is more likely a slip (a swapped field, a missing digit) than a date meant; it is
//! refused with the form it should have instead of being read as something the user did not
//! write. Every date that comes in (JSON and YAML bodies, query parameters, CSV cells, CLI
//! options) goes through [`parse_date`].

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};

/// Why a text is not a date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not four digits, a dash, two digits, a dash, two digits.
    #[error("{0:?} is not a date written YYYY-MM-DD (e.g. 2025-02-28)")]
    Form(String),
    /// The right form, but no such day (`2025-02-30`, month 13).
    #[error("{0:?} is not a date that exists (YYYY-MM-DD, e.g. 2025-02-28)")]
    NoSuchDay(String),
}

/// Reads `YYYY-MM-DD` (years 0000–9999), exactly: no sign, no padding left out, no spaces.
pub fn parse_date(s: &str) -> Result<NaiveDate, DateError> {
    let b = s.as_bytes();
    let form = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !form {
        return Err(DateError::Form(s.to_owned()));
    }
    // Digits only, checked above, so these cannot fail; the calendar can.
    let number = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    let year = i32::try_from(number(0..4)).unwrap_or(0);
    NaiveDate::from_ymd_opt(year, number(5..7), number(8..10))
        .ok_or_else(|| DateError::NoSuchDay(s.to_owned()))
}

/// `#[serde(deserialize_with = "…")]` for a date field: [`parse_date`]'s form.
pub fn strict<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse_date(&s).map_err(serde::de::Error::custom)
}

/// [`strict`] for an optional date (`null` is none); pair it with `#[serde(default)]`.
pub fn strict_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NaiveDate>, D::Error> {
    let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
    s.map(|s| parse_date(&s).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn takes_the_form_and_refuses_what_chrono_would_bend() {
        assert_eq!(
            parse_date("2020-01-01"),
            Ok(NaiveDate::from_ymd_opt(2020, 1, 1).unwrap())
        );
        assert_eq!(
            parse_date("0001-01-01"),
            Ok(NaiveDate::from_ymd_opt(1, 1, 1).unwrap())
        );
        for bent in [
            "2025-1-1",
            "2025-01-1",
            "+2025-01-01",
            " 2025-01-01",
            "2025-01-01 ",
            "-0001-01-01",
            "02025-01-01",
            "20250101",
            "2025/01/01",
            "2025-01-01T00:00",
            "",
            "２０２５-01-01",
        ] {
            assert_eq!(
                parse_date(bent),
                Err(DateError::Form(bent.to_owned())),
                "{bent:?}"
            );
        }
        for none in ["2025-02-29", "2025-13-01", "2025-00-10", "2025-04-31"] {
            assert_eq!(
                parse_date(none),
                Err(DateError::NoSuchDay(none.to_owned())),
                "{none:?}"
            );
        }
    }

    #[test]
    fn serde_fields_name_the_form() {
        #[derive(Deserialize, Debug)]
        struct Body {
            #[serde(deserialize_with = "strict")]
            on: NaiveDate,
            #[serde(default, deserialize_with = "strict_option")]
            until: Option<NaiveDate>,
        }
        let ok: Body = serde_json::from_str(r#"{"on":"2024-02-29","until":null}"#).unwrap();
        assert_eq!(ok.on, NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        assert_eq!(ok.until, None);
        let ok: Body = serde_json::from_str(r#"{"on":"2024-02-29"}"#).unwrap();
        assert_eq!(ok.until, None);
        let err = serde_json::from_str::<Body>(r#"{"on":"2024-2-29"}"#).unwrap_err();
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        let err = serde_json::from_str::<Body>(r#"{"on":"2024-02-29","until":"+2025-01-01"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        // An escaped string is not borrowed; it must still be read.
        let ok: Body = serde_json::from_str(r#"{"on":"2024-02-2\u0039"}"#).unwrap();
        assert_eq!(ok.on, NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
    }

    proptest! {
        /// Every date a user can store reads back from the text omorg writes for it.
        #[test]
        fn round_trips_what_omorg_writes(days in 0i64..3_652_058) {
            let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Duration::days(days);
            let text = date.format("%Y-%m-%d").to_string();
            prop_assert_eq!(parse_date(&text), Ok(date));
            prop_assert_eq!(date.to_string(), text);
        }

        /// Whatever it takes is a date chrono reads the same way: strictness only refuses.
        #[test]
        fn never_reads_a_different_date(s in "[0-9+ -]{0,12}") {
            if let Ok(d) = parse_date(&s) {
                prop_assert_eq!(s.parse::<NaiveDate>().ok(), Some(d));
            }
        }
    }
}
