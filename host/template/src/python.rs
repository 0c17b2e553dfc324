//! Python's spellings of values, where templates can see them.
//!
//! - [`tojson`]: transformers replaces jinja2's `tojson` with
//!   `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
//!   sort_keys=False)`: `", "` and `": "` separators, no HTML escaping, keys in
//!   insertion order, every argument honoured. minijinja's own filter is
//!   compact, sorted and HTML-safe, so tool schemas came out different from what
//!   models were trained on.
//! - [`format_value`]: `{{ x }}` prints what Python's `str(x)` prints: `1e+16`,
//!   `['a', 'b']`, `{'k': None}`.
//!
//! Hand-written rather than a crate: `serde_json`'s output is neither format
//! (separators, float spelling, `NaN`, `ensure_ascii`), and no crate renders
//! Python's `repr`.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectExt, ObjectRepr, Rest, ValueKind};
use minijinja::{Error, ErrorKind, Output, State, Value};

/// Deepest nesting `tojson` or printing follows (a cycle through namespaces
/// would otherwise recurse without end).
const MAX_DEPTH: usize = 256;

/// Longest text one printed list or dict may make (the render's output cap
/// applies only once it is written).
pub(crate) const MAX_PRINTED: usize = 16 << 20;

fn check_printed(out: &str) -> Result<(), Error> {
    if out.len() > MAX_PRINTED {
        Err(invalid(format!("a printed value is over {MAX_PRINTED} bytes")))
    } else {
        Ok(())
    }
}

/// The `tojson` filter, as transformers defines it.
pub fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let mut positional = args.iter();
    let mut take = |name: &str| -> Result<Option<Value>, Error> {
        let by_name: Option<Value> = kwargs.get(name)?;
        Ok(by_name.or_else(|| positional.next().cloned()))
    };
    let ensure_ascii = take("ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = match take("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
        Some(v) => match i64::try_from(v.clone()) {
            Ok(n) => Some(" ".repeat(usize::try_from(n).unwrap_or(0).min(64))),
            Err(_) => {
                return Err(invalid(format!(
                    "tojson: indent must be an integer or a string, not {v}"
                )))
            }
        },
    };
    let separators = match take("separators")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => {
            let parts: Vec<String> = v
                .try_iter()
                .map_err(|_| invalid("tojson: separators must be a pair of strings"))?
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("tojson: separators must be a pair of strings"))?;
            match <[String; 2]>::try_from(parts) {
                Ok([item, key]) => Some((item, key)),
                Err(_) => return Err(invalid("tojson: separators must be a pair of strings")),
            }
        }
    };
    let sort_keys = take("sort_keys")?.is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = separators.unwrap_or_else(|| {
        let item = if indent.is_some() { "," } else { ", " };
        (item.to_string(), ": ".to_string())
    });
    let mut out = String::new();
    let dumper = Dumper {
        ensure_ascii,
        indent,
        item_sep,
        key_sep,
        sort_keys,
    };
    dumper.dump(value, 0, &mut out)?;
    Ok(Value::from(out))
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

struct Dumper {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

impl Dumper {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(indent) = &self.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(indent);
            }
        }
    }

    fn dump(&self, value: &Value, level: usize, out: &mut String) -> Result<(), Error> {
        if level > MAX_DEPTH {
            return Err(invalid("tojson: value nested too deeply"));
        }
        check_printed(out)?;
        if crate::pyops::is_generator(value) {
            return Err(invalid("tojson: Object of type generator is not JSON serializable"));
        }
        match value.kind() {
            ValueKind::Undefined => return Err(invalid("tojson: Object of type Undefined is not JSON serializable")),
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => out.push_str(&json_number(value)),
            ValueKind::String => json_string(value.as_str().unwrap_or_default(), self.ensure_ascii, out),
            ValueKind::Map => {
                let mut keys: Vec<Value> = value.try_iter()?.collect();
                if keys.is_empty() {
                    out.push_str("{}");
                    return Ok(());
                }
                if self.sort_keys {
                    keys.sort_by_cached_key(|k| k.to_string());
                }
                out.push('{');
                for (n, key) in keys.iter().enumerate() {
                    if n > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    json_string(&json_key(key)?, self.ensure_ascii, out);
                    out.push_str(&self.key_sep);
                    self.dump(&value.get_item(key)?, level + 1, out)?;
                }
                self.newline(level, out);
                out.push('}');
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.dump(item, level + 1, out)?;
                }
                self.newline(level, out);
                out.push(']');
            }
            _ => {
                return Err(invalid(format!(
                    "tojson: Object of type {} is not JSON serializable",
                    value.kind()
                )))
            }
        }
        Ok(())
    }
}

/// A JSON object key as `json.dumps` converts it.
fn json_key(key: &Value) -> Result<String, Error> {
    Ok(match key.kind() {
        ValueKind::String => key.as_str().unwrap_or_default().to_string(),
        ValueKind::Number => json_number(key),
        ValueKind::Bool => (if key.is_true() { "true" } else { "false" }).to_string(),
        ValueKind::None => "null".to_string(),
        other => {
            return Err(invalid(format!(
                "tojson: keys must be str, int, float, bool or None, not {other}"
            )))
        }
    })
}

fn json_number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) if f.is_nan() => "NaN".into(),
        Ok(f) if f.is_infinite() => (if f > 0.0 { "Infinity" } else { "-Infinity" }).into(),
        Ok(f) => float_repr(f),
        Err(_) => value.to_string(),
    }
}

/// `json.dumps`'s string escaping (`ensure_ascii` escapes everything outside
/// printable ASCII, as UTF-16 code units).
fn json_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && !(' '..='~').contains(&c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional
/// notation for exponents -5 < e < 16 (always with a `.0` when integral), else
/// scientific with a signed two-digit exponent.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return (if f > 0.0 { "inf" } else { "-inf" }).into();
    }
    // Rust's `{:e}` without precision prints the shortest round-trip digits.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-5 < exp && exp < 16) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{}{}.0", digits, "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

/// `repr()` of a value inside a printed container.
fn repr(value: &Value, depth: usize, out: &mut String) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(invalid("value nested too deeply to print"));
    }
    match value.kind() {
        ValueKind::String => str_repr(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => container(value, depth, out)?,
        _ => display(value, out),
    }
    Ok(())
}

fn container(value: &Value, depth: usize, out: &mut String) -> Result<(), Error> {
    if crate::pyops::is_generator(value) {
        // Printing a generator does not consume it.
        out.push_str("<generator object>");
        return Ok(());
    }
    if value.kind() == ValueKind::Map {
        let pairs: Vec<(Value, Value)> = value
            .try_iter()?
            .map(|k| value.get_item(&k).map(|v| (k, v)))
            .collect::<Result<_, _>>()?;
        map_repr(pairs.into_iter(), depth, out)
    } else {
        seq_repr(value.try_iter()?, depth, out)
    }
}

fn seq_repr(items: impl Iterator<Item = Value>, depth: usize, out: &mut String) -> Result<(), Error> {
    out.push('[');
    for (n, item) in items.enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        repr(&item, depth + 1, out)?;
        check_printed(out)?;
    }
    out.push(']');
    Ok(())
}

fn map_repr(pairs: impl Iterator<Item = (Value, Value)>, depth: usize, out: &mut String) -> Result<(), Error> {
    out.push('{');
    for (n, (key, value)) in pairs.enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        repr(&key, depth + 1, out)?;
        out.push_str(": ");
        repr(&value, depth + 1, out)?;
        check_printed(out)?;
    }
    out.push('}');
    Ok(())
}

/// `str()` of a scalar.
fn display(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Number if !value.is_integer() => match f64::try_from(value.clone()) {
            Ok(f) => out.push_str(&float_repr(f)),
            Err(_) => {
                let _ = write!(out, "{value}");
            }
        },
        ValueKind::Undefined => {}
        _ => {
            let _ = write!(out, "{value}");
        }
    }
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`;
/// control and separator characters escaped. Python escapes every character
/// `str.isprintable()` rejects; without Unicode's category tables this escapes
/// the controls, the separators and the format characters templates meet
/// (zero-width, bidi marks, BOM), and keeps other characters as they are.
fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !printable(c) => {
                let n = c as u32;
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02x}")
                } else if n <= 0xffff {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn printable(c: char) -> bool {
    let n = c as u32;
    !(n < 0x20
        || (0x7f..=0xa0).contains(&n)
        || n == 0xad
        || n == 0x1680
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x2064).contains(&n)
        || (0x2066..=0x206f).contains(&n)
        || n == 0x3000
        || n == 0xfeff
        || (0xe000..=0xf8ff).contains(&n)
        || (0xfff9..=0xfffb).contains(&n))
}

/// A list of the context: a plain sequence that prints as Python's `str()`
/// prints a list, wherever a template turns it into text (`~`, `|string`,
/// `|upper`, …), not only in `{{ }}`.
#[derive(Debug)]
pub(crate) struct PyList(Vec<Value>);

/// A dict of the context, in insertion order, printing as Python's `str()`.
#[derive(Debug)]
pub(crate) struct PyDict(IndexMap<Value, Value>);

impl Object for PyList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        seq_repr(self.0.iter().cloned(), 0, &mut out).map_err(|_| fmt::Error)?;
        f.write_str(&out)
    }
}

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.mapped_enumerator(|this| Box::new(this.0.keys().cloned()))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        map_repr(self.0.iter().map(|(k, v)| (k.clone(), v.clone())), 0, &mut out).map_err(|_| fmt::Error)?;
        f.write_str(&out)
    }
}

/// The context's lists and dicts as [`PyList`] and [`PyDict`] (values that
/// came from JSON; lists and dicts a template builds itself print as Python's
/// in `{{ }}` and `|string`, but as minijinja's in `~`).
pub fn pythonize(value: Value, depth: usize) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(invalid("template context nested too deeply"));
    }
    Ok(match value.kind() {
        ValueKind::Map => {
            let mut map = IndexMap::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                map.insert(key, pythonize(item, depth + 1)?);
            }
            Value::from_object(PyDict(map))
        }
        ValueKind::Seq => Value::from_object(PyList(
            value
                .try_iter()?
                .map(|item| pythonize(item, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        _ => value,
    })
}

/// jinja2's `string` filter: Python's `str()`.
pub fn string_filter(value: &Value) -> Result<Value, Error> {
    if value.kind() == ValueKind::String {
        return Ok(value.clone());
    }
    let mut text = String::new();
    match value.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => container(value, 0, &mut text)?,
        _ => display(value, &mut text),
    }
    Ok(Value::from(text))
}

/// The environment's formatter: `{{ x }}` as jinja2 prints it.
pub fn format_value(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        // Iterables too: what `list + list` makes in minijinja is a list in jinja2.
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            let mut text = String::new();
            container(value, 0, &mut text)?;
            out.write_str(&text).map_err(Error::from)
        }
        ValueKind::Number if !value.is_integer() => {
            let mut text = String::new();
            display(value, &mut text);
            out.write_str(&text).map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

#[cfg(test)]
mod tests {
    use super::float_repr;

    #[test]
    fn floats_print_as_python_repr() {
        for (f, expected) in [
            (1.0, "1.0"),
            (21.5, "21.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e22, "-2.5e+22"),
            (123456.789, "123456.789"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(float_repr(f), expected, "{f}");
        }
    }
}
