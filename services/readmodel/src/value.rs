//! Values as read models show them, one canonical JSON form per column type, whatever the
//! database: what the query services serve, what cursors carry and what digests hash.
//!
//! | type        | JSON                                                            |
//! |-------------|-----------------------------------------------------------------|
//! | `BigInt`    | number                                                          |
//! | `Text`      | string                                                          |
//! | `Timestamp` | string, RFC 3339 in UTC with six fractional digits              |
//! | `Boolean`   | `true` / `false`                                                |
//! | `Double`    | number (`-0.0` reads as `0.0`)                                  |
//! | `Decimal`   | string with exactly `scale` fractional digits (`"-12.50"`): exact, which a JSON number read as a float would not be |
//! | `Json`      | the document itself                                             |
//! | `Uuid`      | string, lowercase hyphenated                                    |
//! | `Date`      | string, `YYYY-MM-DD`                                            |
//! | `Bytes`     | string, base64 (standard alphabet, padded)                      |
//!
//! SQL NULL reads as JSON `null` in every type.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use eventline_core::{Column, ColumnType, Decimal, Value};

/// Dates every database stores and orders alike (MySQL's documented `DATE` range).
const FIRST_YEAR: i32 = 1000;
const LAST_YEAR: i32 = 9999;

/// A timestamp as read models show it: RFC 3339 in UTC with microseconds, fixed width.
pub(crate) fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A date as read models show it: `YYYY-MM-DD`.
pub(crate) fn date_text(d: &NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A decimal as read models show it: exactly `scale` fractional digits.
pub(crate) fn decimal_text(mut d: Decimal, scale: u8) -> String {
    d.rescale(u32::from(scale));
    d.to_string()
}

/// A double as JSON; `-0.0` becomes `0.0` (SQLite keeps no negative zero, and SQL compares
/// them equal).
pub(crate) fn double_json(v: f64) -> serde_json::Value {
    let v = if v == 0.0 { 0.0 } else { v };
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Bytes as read models show them: base64.
pub(crate) fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::Value::String(BASE64.encode(bytes))
}

/// The integer SQLite keeps for decimal `d` in a column of scale `scale`: `d * 10^scale`.
/// [`check`] has made sure it fits.
pub(crate) fn scaled_decimal(mut d: Decimal, scale: u8) -> i64 {
    d.rescale(u32::from(scale));
    i64::try_from(d.mantissa()).unwrap_or(if d.is_sign_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The type a value is bound as when no column says (bookkeeping statements, whose values
/// are never NULL).
pub(crate) fn natural_type(value: &Value) -> ColumnType {
    match value {
        Value::Null | Value::Int(_) => ColumnType::BigInt,
        Value::Text(_) => ColumnType::Text,
        Value::Timestamp(_) => ColumnType::Timestamp,
        Value::Bool(_) => ColumnType::Boolean,
        Value::Double(_) => ColumnType::Double,
        Value::Decimal(d) => ColumnType::Decimal {
            precision: ColumnType::MAX_DECIMAL_PRECISION,
            scale: u8::try_from(d.scale()).unwrap_or(u8::MAX),
        },
        Value::Json(_) => ColumnType::Json,
        Value::Uuid(_) => ColumnType::Uuid,
        Value::Date(_) => ColumnType::Date,
        Value::Bytes(_) => ColumnType::Bytes,
    }
}

/// Why `value` cannot be written to `column`, if it cannot: a value of another type, a
/// double that is not finite, a decimal that does not fit the precision and scale (refused,
/// never rounded, so every database stores the same number), a date outside years
/// 1000 to 9999. NULL fits any column here; the database enforces `NOT NULL`.
pub(crate) fn check(column: &Column, value: &Value) -> Result<(), String> {
    let fits = match (column.ty, value) {
        (_, Value::Null)
        | (ColumnType::BigInt, Value::Int(_))
        | (ColumnType::Text, Value::Text(_))
        | (ColumnType::Timestamp, Value::Timestamp(_))
        | (ColumnType::Boolean, Value::Bool(_))
        | (ColumnType::Json, Value::Json(_))
        | (ColumnType::Uuid, Value::Uuid(_))
        | (ColumnType::Bytes, Value::Bytes(_)) => true,
        (ColumnType::Double, Value::Double(v)) => {
            if !v.is_finite() {
                return Err(format!("column {:?} cannot hold {v}", column.name));
            }
            true
        }
        (ColumnType::Decimal { precision, scale }, Value::Decimal(d)) => {
            if !decimal_fits(*d, precision, scale) {
                return Err(format!(
                    "{d} does not fit column {:?} (decimal of {precision} digits, {scale} after the point)",
                    column.name
                ));
            }
            true
        }
        (ColumnType::Date, Value::Date(d)) => {
            if !(FIRST_YEAR..=LAST_YEAR).contains(&d.year()) {
                return Err(format!(
                    "{d} is outside years {FIRST_YEAR} to {LAST_YEAR} (column {:?})",
                    column.name
                ));
            }
            true
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "column {:?} ({:?}) cannot hold {value:?}",
            column.name, column.ty
        ))
    }
}

/// Whether `d` has at most `scale` fractional digits and `precision - scale` integer digits.
fn decimal_fits(d: Decimal, precision: u8, scale: u8) -> bool {
    let fraction = d.normalize().scale();
    if fraction > u32::from(scale) {
        return false;
    }
    let mut scaled = d;
    scaled.rescale(u32::from(scale));
    // rescale never fails: it keeps a smaller scale when the mantissa cannot grow.
    scaled.scale() == u32::from(scale)
        && scaled.mantissa().unsigned_abs() < 10u128.pow(u32::from(precision))
}

/// Why a column type cannot be declared, if it cannot.
pub(crate) fn check_type(ty: ColumnType) -> Result<(), String> {
    match ty {
        ColumnType::Decimal { precision, scale }
            if precision == 0
                || precision > ColumnType::MAX_DECIMAL_PRECISION
                || scale > precision =>
        {
            Err(format!(
                "a decimal has 1 to {} digits, and at most as many after the point (got precision {precision}, scale {scale})",
                ColumnType::MAX_DECIMAL_PRECISION
            ))
        }
        _ => Ok(()),
    }
}

/// A column's value as read (JSON), typed by the column: the inverse of how rows are read,
/// so a row's key can bound the next page. `None` if the JSON does not fit the column.
pub fn column_value(ty: ColumnType, json: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as Json;
    match (ty, json) {
        (_, Json::Null) => Some(Value::Null),
        (ColumnType::BigInt, Json::Number(n)) => n.as_i64().map(Value::Int),
        (ColumnType::Text, Json::String(s)) => Some(Value::Text(s.clone())),
        (ColumnType::Timestamp, Json::String(s)) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Value::Timestamp(t.with_timezone(&Utc))),
        (ColumnType::Boolean, Json::Bool(b)) => Some(Value::Bool(*b)),
        (ColumnType::Double, Json::Number(n)) => n.as_f64().map(Value::Double),
        (ColumnType::Decimal { .. }, Json::String(s)) => {
            Decimal::from_str_exact(s).ok().map(Value::Decimal)
        }
        (ColumnType::Json, document) => Some(Value::Json(document.clone())),
        (ColumnType::Uuid, Json::String(s)) => uuid::Uuid::from_str(s).ok().map(Value::Uuid),
        (ColumnType::Date, Json::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(Value::Date),
        (ColumnType::Bytes, Json::String(s)) => BASE64.decode(s).ok().map(Value::Bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(ty: ColumnType) -> Column {
        Column::new("c", ty)
    }

    #[test]
    fn column_values_read_back_as_their_types() {
        assert_eq!(
            column_value(ColumnType::BigInt, &json!(7)),
            Some(Value::Int(7))
        );
        assert_eq!(
            column_value(ColumnType::Text, &json!("a")),
            Some(Value::from("a"))
        );
        let at = column_value(ColumnType::Timestamp, &json!("2026-11-30T10:00:00.000001Z"));
        assert!(matches!(at, Some(Value::Timestamp(t)) if t.timestamp_subsec_micros() == 1));
        assert_eq!(
            column_value(ColumnType::Text, &json!(null)),
            Some(Value::Null)
        );
        assert_eq!(column_value(ColumnType::BigInt, &json!("7")), None);
        assert_eq!(
            column_value(ColumnType::Timestamp, &json!("yesterday")),
            None
        );
    }

    #[test]
    fn new_column_values_read_back_from_their_canonical_json() {
        let decimal = ColumnType::decimal(10, 2);
        assert_eq!(
            column_value(decimal, &json!("-12.50")),
            Some(Value::Decimal(Decimal::new(-1250, 2)))
        );
        assert_eq!(column_value(decimal, &json!(12.5)), None, "only exact text");
        assert_eq!(
            column_value(ColumnType::Boolean, &json!(true)),
            Some(Value::Bool(true))
        );
        assert_eq!(
            column_value(ColumnType::Double, &json!(0.25)),
            Some(Value::Double(0.25))
        );
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(
            column_value(ColumnType::Uuid, &json!(id.to_string())),
            Some(Value::Uuid(id))
        );
        let day = NaiveDate::from_ymd_opt(1969, 7, 20).expect("date");
        assert_eq!(date_text(&day), "1969-07-20");
        assert_eq!(
            column_value(ColumnType::Date, &json!("1969-07-20")),
            Some(Value::Date(day))
        );
        assert_eq!(
            column_value(ColumnType::Bytes, &bytes_json(&[0, 255, 1])),
            Some(Value::Bytes(vec![0, 255, 1]))
        );
        assert_eq!(
            column_value(ColumnType::Json, &json!({"a": [1, "é"]})),
            Some(Value::Json(json!({"a": [1, "é"]})))
        );
        assert_eq!(column_value(ColumnType::Date, &json!("20-07-1969")), None);
        assert_eq!(column_value(ColumnType::Uuid, &json!("not-a-uuid")), None);
    }

    #[test]
    fn decimals_show_their_declared_scale() {
        assert_eq!(decimal_text(Decimal::new(125, 1), 2), "12.50");
        assert_eq!(decimal_text(Decimal::new(-5, 0), 3), "-5.000");
        assert_eq!(scaled_decimal(Decimal::new(-125, 1), 2), -1250);
        assert_eq!(decimal_text(Decimal::ZERO, 0), "0");
    }

    #[test]
    fn values_that_do_not_fit_their_column_are_refused() {
        let money = column(ColumnType::decimal(6, 2));
        assert!(check(&money, &Value::Decimal(Decimal::new(999_999, 2))).is_ok());
        assert!(check(&money, &Value::Decimal(Decimal::new(-999_999, 2))).is_ok());
        assert!(
            check(&money, &Value::Decimal(Decimal::new(12_300, 3))).is_ok(),
            "trailing zeros beyond the scale are no loss"
        );
        let error = check(&money, &Value::Decimal(Decimal::new(1_234, 3))).expect_err("scale");
        assert!(
            error.contains("decimal of 6 digits, 2 after the point"),
            "{error}"
        );
        assert!(check(&money, &Value::Decimal(Decimal::new(10_000_000, 2))).is_err());
        assert!(check(&money, &Value::Int(1)).is_err());
        assert!(check(&column(ColumnType::Double), &Value::Double(f64::NAN)).is_err());
        assert!(check(&column(ColumnType::Double), &Value::Double(f64::INFINITY)).is_err());
        let date = column(ColumnType::Date);
        let year = |y| Value::Date(NaiveDate::from_ymd_opt(y, 1, 1).expect("date"));
        assert!(check(&date, &year(1000)).is_ok());
        assert!(check(&date, &year(999)).is_err());
        assert!(check(&date, &year(10_000)).is_err());
        assert!(check(&column(ColumnType::Json), &Value::Null).is_ok());
        assert!(check(&column(ColumnType::Uuid), &Value::from("x")).is_err());
    }

    #[test]
    fn decimal_declarations_are_checked() {
        assert!(check_type(ColumnType::decimal(18, 18)).is_ok());
        assert!(check_type(ColumnType::decimal(19, 2)).is_err());
        assert!(check_type(ColumnType::decimal(0, 0)).is_err());
        assert!(check_type(ColumnType::decimal(4, 5)).is_err());
    }
}
