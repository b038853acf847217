//! Values between a service and PostgreSQL, on the worker pipe as JSON.
//! JSON's own null, booleans, numbers, strings and lists travel as they
//! are; what JSON lacks is a tagged object, `{"$": TAG, "v": TEXT}`:
//! `dec` (numeric), `bytes` (base64), `ts`, `tstz`, `date`, `time`, `uuid`,
//! `float` (NaN and infinities) and `json` (a json/jsonb value, so a JSON
//! object is never mistaken for a tag). A parameter is converted to the
//! type PostgreSQL inferred for it, so `'5'` binds to an int4 and `5` to a
//! numeric; a value that does not fit names the parameter and the type.

use alpharen_store::uuid_text;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::{Value, json};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// One bind parameter: its name (or position) for messages, its value.
#[derive(Debug)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: &'a Value,
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        encode(self.value, ty, out)
            .map_err(|e| format!("parameter {}: {e} (column type {})", self.name, ty.name()).into())
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn tagged(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    Some((o.get("$")?.as_str()?, o.get("v").unwrap_or(&Value::Null)))
}

fn text_like(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::XML
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

fn encode(v: &Value, ty: &Type, out: &mut BytesMut) -> Result<IsNull, String> {
    if let Kind::Domain(base) = ty.kind() {
        return encode(v, base, out);
    }
    let ok = |r: Result<IsNull, BoxError>| r.map_err(|e| e.to_string());
    match (v, ty.kind()) {
        (Value::Null, _) => Ok(IsNull::Yes),
        (_, _) if matches!(*ty, Type::JSON | Type::JSONB) => {
            let doc = match (tagged(v), v) {
                (Some(("json", inner)), _) => inner.clone(),
                (_, Value::String(s)) => serde_json::from_str(s)
                    .map_err(|e| format!("a string for json must hold JSON text: {e}"))?,
                (Some(_), _) => return Err("not a JSON value".into()),
                _ => v.clone(),
            };
            ok(doc.to_sql(ty, out))
        }
        (Value::Array(items), Kind::Array(_)) => {
            let params: Vec<Param<'_>> = items
                .iter()
                .map(|value| Param { name: "", value })
                .collect();
            ok(params.to_sql(ty, out))
        }
        (Value::Bool(b), _) if *ty == Type::BOOL => ok(b.to_sql(ty, out)),
        (Value::Bool(b), _) if text_like(ty) => text(if *b { "true" } else { "false" }, out),
        (Value::Number(n), _) => scalar(&n.to_string(), ty, out),
        (Value::String(s), _) => scalar(s, ty, out),
        (Value::Object(_), _) => match tagged(v) {
            Some(("bytes", Value::String(b))) => {
                let raw = B64.decode(b).map_err(|e| format!("bad base64: {e}"))?;
                if *ty == Type::BYTEA {
                    ok(raw.to_sql(ty, out))
                } else {
                    Err("bytes only bind to bytea".into())
                }
            }
            Some(("json", inner)) if text_like(ty) => text(&inner.to_string(), out),
            Some((_, Value::String(s))) => scalar(s, ty, out),
            _ => Err("a dict only binds to json or jsonb".into()),
        },
        (Value::Array(_), _) => Err("a list only binds to an array, json or jsonb".into()),
        (Value::Bool(_), _) => Err("a bool does not bind here".into()),
    }
}

fn text(s: &str, out: &mut BytesMut) -> Result<IsNull, String> {
    out.put_slice(s.as_bytes());
    Ok(IsNull::No)
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not {what}"))
}

/// A number, string or tagged text for a scalar column type.
fn scalar(s: &str, ty: &Type, out: &mut BytesMut) -> Result<IsNull, String> {
    let ok = |r: Result<IsNull, BoxError>| r.map_err(|e| e.to_string());
    match *ty {
        _ if text_like(ty) => text(s, out),
        Type::INT2 => ok(parse::<i16>(s, "a 16-bit integer")?.to_sql(ty, out)),
        Type::INT4 => ok(parse::<i32>(s, "a 32-bit integer")?.to_sql(ty, out)),
        Type::INT8 => ok(parse::<i64>(s, "a 64-bit integer")?.to_sql(ty, out)),
        Type::OID => ok(parse::<u32>(s, "an oid")?.to_sql(ty, out)),
        Type::FLOAT4 => ok(parse::<f32>(s, "a number")?.to_sql(ty, out)),
        Type::FLOAT8 => ok(parse::<f64>(s, "a number")?.to_sql(ty, out)),
        Type::NUMERIC => {
            out.put_slice(&numeric_encode(s)?);
            Ok(IsNull::No)
        }
        Type::BOOL => {
            let b = match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => true,
                "false" | "f" | "no" | "n" | "off" | "0" => false,
                _ => return Err(format!("{s:?} is not a boolean")),
            };
            ok(b.to_sql(ty, out))
        }
        Type::BYTEA => ok(s.as_bytes().to_sql(ty, out)),
        Type::DATE => ok(parse::<NaiveDate>(s, "a date (YYYY-MM-DD)")?.to_sql(ty, out)),
        Type::TIME => ok(parse::<NaiveTime>(s, "a time (HH:MM:SS)")?.to_sql(ty, out)),
        Type::TIMESTAMP => ok(naive_datetime(s)?.to_sql(ty, out)),
        Type::TIMESTAMPTZ => {
            let t = match DateTime::<FixedOffset>::parse_from_rfc3339(s.trim()) {
                Ok(t) => t.with_timezone(&Utc),
                // Without an offset it is taken as UTC.
                Err(_) => naive_datetime(s)?.and_utc(),
            };
            ok(t.to_sql(ty, out))
        }
        Type::UUID => {
            out.put_slice(&uuid_encode(s)?);
            Ok(IsNull::No)
        }
        _ => Err("this type is not supported for parameters; cast the parameter in the SQL (CAST(:p AS text)::TYPE)".into()),
    }
}

/// A timestamp without zone; one given with an offset keeps its local
/// time, as PostgreSQL's cast to `timestamp` does.
fn naive_datetime(s: &str) -> Result<NaiveDateTime, String> {
    let t = s.trim().replace(' ', "T");
    t.parse::<NaiveDateTime>()
        .or_else(|_| DateTime::<FixedOffset>::parse_from_rfc3339(&t).map(|d| d.naive_local()))
        .map_err(|_| format!("{s:?} is not a timestamp (YYYY-MM-DDTHH:MM:SS)"))
}

fn uuid_encode(s: &str) -> Result<[u8; 16], String> {
    let hex: String = s
        .trim()
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|&c| c != '-')
        .collect();
    let mut out = [0u8; 16];
    if hex.len() != 32 {
        return Err(format!("{s:?} is not a UUID"));
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("{s:?} is not a UUID"))?;
    }
    Ok(out)
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// A decimal text (`-12.50`, `1E+3`, `NaN`) in numeric's binary form:
/// base-10000 digit groups around the decimal point.
pub fn numeric_encode(s: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("{s:?} is not a decimal number");
    let t = s.trim();
    let header = |ndigits: u16, weight: i16, sign: u16, dscale: u16| {
        let mut v = Vec::with_capacity(8 + 2 * ndigits as usize);
        v.extend_from_slice(&ndigits.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        v
    };
    match t.to_ascii_lowercase().as_str() {
        "nan" => return Ok(header(0, 0, NUMERIC_NAN, 0)),
        "infinity" | "inf" | "+infinity" | "+inf" => return Ok(header(0, 0, NUMERIC_PINF, 0)),
        "-infinity" | "-inf" => return Ok(header(0, 0, NUMERIC_NINF, 0)),
        _ => {}
    }
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(p) => (&t[..p], t[p + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || exp.abs() > 100_000
    {
        return Err(bad());
    }
    let all = format!("{int}{frac}");
    let point = int.len() as i64 + exp as i64;
    let (ip, fp) = if point >= all.len() as i64 {
        (
            format!("{all}{}", "0".repeat(point as usize - all.len())),
            String::new(),
        )
    } else if point <= 0 {
        (
            String::new(),
            format!("{}{all}", "0".repeat((-point) as usize)),
        )
    } else {
        let (a, b) = all.split_at(point as usize);
        (a.to_string(), b.to_string())
    };
    let dscale = u16::try_from(fp.len()).map_err(|_| bad())?;
    let ip = ip.trim_start_matches('0');
    let ip = format!("{}{ip}", "0".repeat((4 - ip.len() % 4) % 4));
    let fp = format!("{fp}{}", "0".repeat((4 - fp.len() % 4) % 4));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |a, d| a * 10 + (d - b'0') as i16))
            .collect()
    };
    let mut groups = group(&ip);
    let mut weight = groups.len() as i64 - 1;
    groups.extend(group(&fp));
    let lead = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..lead);
    weight -= lead as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        return Ok(header(0, 0, 0, dscale));
    }
    let weight = i16::try_from(weight).map_err(|_| bad())?;
    let sign = if neg { NUMERIC_NEG } else { 0 };
    let mut v = header(groups.len() as u16, weight, sign, dscale);
    for g in groups {
        v.extend_from_slice(&g.to_be_bytes());
    }
    Ok(v)
}

/// numeric's binary form as decimal text, with its scale's digits.
pub fn numeric_text(raw: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "short numeric value".to_string())
    };
    let (ndigits, weight, sign, dscale) = (
        word(0)? as usize,
        word(1)? as i16 as i64,
        word(2)?,
        word(3)? as usize,
    );
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        _ => {}
    }
    let digit = |k: i64| -> Result<u16, String> {
        if k >= 0 && (k as usize) < ndigits {
            word(4 + k as usize)
        } else {
            Ok(0)
        }
    };
    let mut s = String::new();
    if sign == NUMERIC_NEG {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for k in 0..=weight {
            let d = digit(k)?;
            s.push_str(&if k == 0 {
                d.to_string()
            } else {
                format!("{d:04}")
            });
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut k = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(k)?));
            k += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

/// One value of a result row, as it goes to the worker.
pub struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn tag(t: &str, v: impl Into<Value>) -> Value {
    json!({"$": t, "v": v.into()})
}

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    if let Kind::Domain(base) = ty.kind() {
        return decode(base, raw);
    }
    if let Kind::Array(_) = ty.kind() {
        let items = Vec::<Cell>::from_sql(ty, raw)?;
        return Ok(Value::Array(items.into_iter().map(|c| c.0).collect()));
    }
    let float = |f: f64| {
        if f.is_finite() {
            json!(f)
        } else {
            tag("float", f.to_string())
        }
    };
    Ok(match *ty {
        Type::BOOL => json!(bool::from_sql(ty, raw)?),
        Type::INT2 => json!(i16::from_sql(ty, raw)?),
        Type::INT4 => json!(i32::from_sql(ty, raw)?),
        Type::INT8 => json!(i64::from_sql(ty, raw)?),
        Type::OID => json!(u32::from_sql(ty, raw)?),
        Type::FLOAT4 => float(f32::from_sql(ty, raw)? as f64),
        Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
        Type::NUMERIC => tag("dec", numeric_text(raw)?),
        Type::BYTEA => tag("bytes", B64.encode(raw)),
        Type::DATE => tag("date", NaiveDate::from_sql(ty, raw)?.to_string()),
        Type::TIME => tag(
            "time",
            NaiveTime::from_sql(ty, raw)?
                .format("%H:%M:%S%.6f")
                .to_string(),
        ),
        Type::TIMESTAMP => tag(
            "ts",
            NaiveDateTime::from_sql(ty, raw)?
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string(),
        ),
        Type::TIMESTAMPTZ => tag(
            "tstz",
            DateTime::<Utc>::from_sql(ty, raw)?
                .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
                .to_string(),
        ),
        Type::JSON | Type::JSONB => tag("json", Value::from_sql(ty, raw)?),
        Type::UUID => match <&[u8; 16]>::try_from(raw) {
            Ok(b) => tag("uuid", uuid_text(b)),
            Err(_) => return Err("a uuid of other than 16 bytes".into()),
        },
        _ if text_like(ty) || *ty == Type::CHAR => json!(String::from_utf8_lossy(raw)),
        _ => {
            return Err(format!(
                "column type {} is not supported; cast the column in the SQL (col::text)",
                ty.name()
            )
            .into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_round_trip_through_the_binary_form() {
        for (given, shown) in [
            ("0", "0"),
            ("0.00", "0.00"),
            ("12.50", "12.50"),
            ("-12345678.9", "-12345678.9"),
            ("10000", "10000"),
            ("0.0001", "0.0001"),
            ("1E+3", "1000"),
            ("1.5e-5", "0.000015"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
            ("NaN", "NaN"),
        ] {
            let raw = numeric_encode(given).unwrap();
            assert_eq!(numeric_text(&raw).unwrap(), shown, "{given}");
        }
        // 12.50 is groups [12, 5000], weight 0, scale 2.
        assert_eq!(
            numeric_encode("12.50").unwrap(),
            [0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]
        );
        assert!(numeric_encode("1.2.3").is_err());
        assert!(numeric_encode("'; DROP TABLE t; --").is_err());
    }

    #[test]
    fn parameters_take_the_inferred_type_and_name_the_misfits() {
        let mut out = BytesMut::new();
        let p = |v: Value| v;
        assert!(matches!(
            encode(&p(json!("42")), &Type::INT4, &mut out),
            Ok(IsNull::No)
        ));
        assert_eq!(&out[..], &42i32.to_be_bytes());
        out.clear();
        encode(&p(json!(7)), &Type::TEXT, &mut out).unwrap();
        assert_eq!(&out[..], b"7");
        out.clear();
        encode(
            &tag("uuid", "6f1c2a9e-0b3d-4e5f-8a7b-1c2d3e4f5a6b"),
            &Type::UUID,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            decode(&Type::UUID, &out).unwrap(),
            tag("uuid", "6f1c2a9e-0b3d-4e5f-8a7b-1c2d3e4f5a6b")
        );
        let Err(e) = Param {
            name: ":n",
            value: &json!("x1"),
        }
        .to_sql(&Type::INT4, &mut out) else {
            panic!("a string that is no integer bound to an int4");
        };
        let e = e.to_string();
        assert_eq!(
            e,
            "parameter :n: \"x1\" is not a 32-bit integer (column type int4)"
        );
        assert!(encode(&json!({"a": 1}), &Type::TEXT, &mut out).is_err());
        assert!(matches!(
            encode(&Value::Null, &Type::INT4, &mut out),
            Ok(IsNull::Yes)
        ));
    }

    #[test]
    fn cells_are_tagged_where_json_has_no_type() {
        let ts = NaiveDate::from_ymd_opt(2024, 5, 1)
            .unwrap()
            .and_hms_opt(10, 20, 30)
            .unwrap();
        let mut raw = BytesMut::new();
        ts.to_sql(&Type::TIMESTAMP, &mut raw).unwrap();
        assert_eq!(
            decode(&Type::TIMESTAMP, &raw).unwrap(),
            tag("ts", "2024-05-01T10:20:30.000000")
        );
        assert_eq!(
            decode(&Type::BYTEA, b"\x00\xff").unwrap(),
            tag("bytes", "AP8=")
        );
        assert_eq!(decode(&Type::TEXT, b"hi").unwrap(), json!("hi"));
        assert_eq!(
            decode(&Type::FLOAT8, &f64::NAN.to_be_bytes()).unwrap(),
            tag("float", "NaN")
        );
        assert!(
            decode(&Type::INTERVAL, b"0000000000000000")
                .unwrap_err()
                .to_string()
                .contains("cast")
        );
    }
}
