//! The run-time side of `operators.rs`: Python's `+` where markup strings take
//! part, `~` as `str()` of each side, and Python's attribute lookup on dicts
//! and lists.
//!
//! - [`add`]: in jinja2, `"…"|safe` is a `Markup`, and `Markup + str` (either
//!   way round) HTML-escapes the plain string; otherwise `+` is Python's. The
//!   markup flag is minijinja's "safe string" flag, which with autoescaping off
//!   (always, here) comes from the same places `Markup` does: `safe`,
//!   `escape`, and filters that keep their input's safety.
//! - [`generator`]: `map`, `select`, `reject`, `selectattr` and `rejectattr`
//!   return a generator in jinja2: iterable once, true even when empty, no
//!   length, printed as `<generator object …>`, refused by `tojson`. minijinja
//!   returns a list, so a template that iterates the result twice, or dumps it,
//!   rendered where transformers gives an empty second loop or an error.
//! - [`attr`]: `d.items` on a dict is the bound method `items` in jinja2, even
//!   when the dict has an `items` key (it reads the key only for names a dict
//!   has no attribute by); the sandbox makes the mutating ones (`pop`,
//!   `update`, …) undefined. minijinja reads the key for both `d.items` and
//!   `d["items"]`.

use std::fmt;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr, Rest, ValueKind};
use std::borrow::Cow;

use minijinja::{Environment, Error, ErrorKind, State, Value};

/// Registers the functions and filters `operators.rs` rewrites into, and the
/// generator-returning filters.
pub fn register(env: &mut Environment<'static>) {
    env.add_filter(crate::operators::ATTR_FILTER, |v: &Value, name: &str| attr(v, name));
    env.add_function(crate::operators::ADD_FUNCTION, add);
    env.add_function(crate::operators::CONCAT_FUNCTION, concat);
    // The filters that return generators in jinja2.
    env.add_filter("map", |state: &State, v: Value, args: Rest<Value>| {
        minijinja::filters::map(state, v, args).map(generator)
    });
    env.add_filter(
        "select",
        |state: &State, v: Value, test: Option<Cow<'_, str>>, args: Rest<Value>| {
            minijinja::filters::select(state, v, test, args).map(generator)
        },
    );
    env.add_filter(
        "reject",
        |state: &State, v: Value, test: Option<Cow<'_, str>>, args: Rest<Value>| {
            minijinja::filters::reject(state, v, test, args).map(generator)
        },
    );
    env.add_filter(
        "selectattr",
        |state: &State, v: Value, attr: Cow<'_, str>, test: Option<Cow<'_, str>>, args: Rest<Value>| {
            minijinja::filters::selectattr(state, v, attr, test, args).map(generator)
        },
    );
    env.add_filter(
        "rejectattr",
        |state: &State, v: Value, attr: Cow<'_, str>, test: Option<Cow<'_, str>>, args: Rest<Value>| {
            minijinja::filters::rejectattr(state, v, attr, test, args).map(generator)
        },
    );
}

/// Attributes of a Python dict jinja2's immutable sandbox lets a template read.
const DICT_SAFE: &[&str] = &["items", "keys", "values", "get", "copy", "fromkeys"];
/// Attributes of a dict the immutable sandbox hides (they modify it).
const DICT_UNSAFE: &[&str] = &["pop", "popitem", "setdefault", "update", "clear"];
/// The same for lists.
const LIST_SAFE: &[&str] = &["index", "count", "copy"];
const LIST_UNSAFE: &[&str] = &[
    "append", "extend", "insert", "remove", "reverse", "sort", "pop", "clear",
];

/// Whether `.name` (not called) can mean something other than a key lookup
/// in jinja2: the names `operators.rs` sends through [`attr`].
pub fn is_container_attribute(name: &str) -> bool {
    [DICT_SAFE, DICT_UNSAFE, LIST_SAFE, LIST_UNSAFE]
        .iter()
        .any(|names| names.contains(&name))
}

fn is_dict(value: &Value) -> bool {
    value.downcast_object_ref::<crate::python::PyDict>().is_some()
        || value.downcast_object_ref::<IndexMap<Value, Value>>().is_some()
}

fn is_list(value: &Value) -> bool {
    value.downcast_object_ref::<crate::python::PyList>().is_some()
        || value.downcast_object_ref::<Vec<Value>>().is_some()
}

/// `value.name` as jinja2's sandbox reads it.
pub fn attr(value: &Value, name: &str) -> Result<Value, Error> {
    let (safe, unsafe_) = if is_dict(value) {
        (DICT_SAFE, DICT_UNSAFE)
    } else if is_list(value) {
        (LIST_SAFE, LIST_UNSAFE)
    } else {
        return value.get_attr(name);
    };
    Ok(if safe.contains(&name) {
        Value::from_object(BoundMethod {
            receiver: value.clone(),
            name: name.to_string(),
        })
    } else if unsafe_.contains(&name) {
        Value::UNDEFINED
    } else {
        value.get_attr(name)?
    })
}

/// A method of a dict or list read without calling it: callable, true, and
/// printed as Python prints a built-in method (without the address).
#[derive(Debug)]
struct BoundMethod {
    receiver: Value,
    name: String,
}

impl BoundMethod {
    fn type_name(&self) -> &'static str {
        if is_dict(&self.receiver) {
            "dict"
        } else {
            "list"
        }
    }
}

impl Object for BoundMethod {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        None
    }

    fn call(self: &Arc<Self>, state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        self.receiver.call_method(state, &self.name, args)
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<built-in method {} of {} object>", self.name, self.type_name())
    }
}

/// jinja2's `a ~ b ~ …`: the concatenation of each operand's `str()`.
pub fn concat(parts: Rest<Value>) -> Result<Value, Error> {
    let mut out = String::new();
    for part in parts.iter() {
        if part.is_undefined() {
            continue;
        }
        let text = crate::python::string_filter(part)?;
        out.push_str(text.as_str().unwrap_or_default());
        check_size(out.len())?;
    }
    Ok(Value::from(out))
}

/// An integer as the smallest value kind that holds it.
pub(crate) fn int_value(n: i128) -> Value {
    i64::try_from(n).map_or_else(|_| Value::from(n), Value::from)
}

/// Python's `a + b + …` (left to right), with `Markup`'s escaping.
pub fn add(first: Value, rest: Rest<Value>) -> Result<Value, Error> {
    rest.iter().try_fold(first, |sum, next| add2(&sum, next))
}

/// Longest list `+` builds (it copies both sides, where minijinja's own `+`
/// chains them lazily; the renderer's memory cap would stop a doubling loop
/// later, this stops it with a message).
const MAX_LIST: usize = 1 << 24;

/// Strings `+`, `~` and the filters of `filters.rs` build stay under the size
/// a printed value may have.
pub(crate) fn check_size(bytes: usize) -> Result<(), Error> {
    if bytes > crate::python::MAX_PRINTED {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("a string is over {} bytes", crate::python::MAX_PRINTED),
        ))
    } else {
        Ok(())
    }
}

fn add2(a: &Value, b: &Value) -> Result<Value, Error> {
    let markup = |v: &Value| v.kind() == ValueKind::String && v.is_safe();
    if markup(a) || markup(b) {
        return match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => {
                check_size(x.len() + y.len())?;
                let mut out = String::with_capacity(x.len() + y.len());
                escape_unless_markup(a, x, &mut out);
                escape_unless_markup(b, y, &mut out);
                Ok(Value::from_safe_string(out))
            }
            _ => Err(unsupported(a, b)),
        };
    }
    if a.is_undefined() || b.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "`+` on an undefined value"));
    }
    match (a.kind(), b.kind()) {
        (ValueKind::String, ValueKind::String) => {
            let (x, y) = (a.as_str().unwrap_or_default(), b.as_str().unwrap_or_default());
            check_size(x.len() + y.len())?;
            Ok(Value::from([x, y].concat()))
        }
        // What `[1] * n` or `list + list` makes in minijinja is a list in Python.
        (ValueKind::Seq | ValueKind::Iterable, ValueKind::Seq | ValueKind::Iterable)
            if !is_generator(a) && !is_generator(b) =>
        {
            let too_long = || Error::new(ErrorKind::InvalidOperation, format!("a list over {MAX_LIST} items"));
            let mut items: Vec<Value> = a.try_iter()?.take(MAX_LIST + 1).collect();
            items.extend(b.try_iter()?.take(MAX_LIST + 1 - items.len().min(MAX_LIST + 1)));
            if items.len() > MAX_LIST {
                return Err(too_long());
            }
            Ok(Value::from(items))
        }
        (ValueKind::Number | ValueKind::Bool, ValueKind::Number | ValueKind::Bool) => number_add(a, b),
        _ => Err(unsupported(a, b)),
    }
}

fn number_add(a: &Value, b: &Value) -> Result<Value, Error> {
    let int = |v: &Value| match v.kind() {
        ValueKind::Bool => Some(i128::from(v.is_true())),
        _ if v.is_integer() => i128::try_from(v.clone()).ok(),
        _ => None,
    };
    if let (Some(x), Some(y)) = (int(a), int(b)) {
        return x
            .checked_add(y)
            .map(int_value)
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "integer overflow in `+`"));
    }
    let float = |v: &Value| int(v).map(|n| n as f64).or_else(|| f64::try_from(v.clone()).ok());
    match (float(a), float(b)) {
        (Some(x), Some(y)) => Ok(Value::from(x + y)),
        _ => Err(unsupported(a, b)),
    }
}

fn unsupported(a: &Value, b: &Value) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("unsupported operand types for +: {} and {}", a.kind(), b.kind()),
    )
}

/// markupsafe's `escape`, which `Markup + str` applies to the plain side.
fn escape_unless_markup(value: &Value, text: &str, out: &mut String) {
    if value.is_safe() {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            c => out.push(c),
        }
    }
}

/// What a jinja2 filter returns as a generator (see the module doc).
#[derive(Debug)]
struct Generator(Mutex<Option<Vec<Value>>>);

impl Object for Generator {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        None
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        None
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.0.lock().ok().and_then(|mut items| items.take()) {
            Some(items) => Enumerator::Iter(Box::new(items.into_iter())),
            None => Enumerator::Empty,
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<generator object>")
    }
}

/// A filter's result as a one-shot generator.
pub fn generator(items: Vec<Value>) -> Value {
    Value::from_object(Generator(Mutex::new(Some(items))))
}

pub fn is_generator(value: &Value) -> bool {
    value.downcast_object_ref::<Generator>().is_some()
}

#[cfg(test)]
mod tests {
    // Expected values are what Python's jinja2 3.1 renders (sandboxed, as transformers does).
    fn render(template: &str) -> Result<String, String> {
        let context = r#"{"d": {"items": [1, 2], "k": "v", "pop": 9}, "xs": ["a", "b", "c"]}"#;
        crate::render(template, context, &crate::Budget::default())
    }

    #[test]
    fn adding_to_markup_escapes_the_plain_side() {
        assert_eq!(
            render("{{ 'x'|safe + '<b>' }}|{{ '<b>' + 'x'|safe }}|{% set m = 'x'|safe %}{{ m + '&' + \"'\" }}|{{ 'a' + 'b' }}")
                .unwrap(),
            "x&lt;b&gt;|&lt;b&gt;x|x&amp;&#39;|ab"
        );
        // Everything else adds as Python adds, in a template that makes markup.
        assert_eq!(
            render("{{ 'q'|e }}{{ 1 + 2 }}|{{ 2.5 + 1 }}|{{ 3 + true }}|{{ [1] + [2] }}|{{ ('x'|safe + '<')|length }}")
                .unwrap(),
            "q3|3.5|4|[1, 2]|5"
        );
        for bad in [
            "{{ 'x'|safe + 1 }}",
            "{{ 'q'|e }}{{ 1 + 'a' }}",
            "{{ 'q'|e }}{{ none + 1 }}",
        ] {
            assert!(render(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dicts_methods_come_before_its_keys_when_read_as_attributes() {
        assert_eq!(
            render("{{ d.items is defined }}|{{ d.items }}|{{ d['items'] }}|{{ d.pop }}|{{ d.k }}|{{ (d.items)()|length }}")
                .unwrap(),
            "True|<built-in method items of dict object>|[1, 2]||v|3"
        );
        // A namespace's attributes are its own; a list's methods are methods.
        assert_eq!(
            render("{% set ns = namespace(items=[1], count=2) %}{{ ns.items }}{{ ns.count }}|{{ xs.count is defined }}|{{ xs.append }}")
                .unwrap(),
            "[1]2|True|"
        );
    }

    #[test]
    fn filter_generators_are_used_up_once_and_have_no_length() {
        assert_eq!(
            render("{% set g = xs|map('upper') %}{% for x in g %}{{ x }}{% endfor %}|{% for x in g %}{{ x }}{% endfor %}|{{ g }}")
                .unwrap(),
            "ABC||<generator object>"
        );
        assert_eq!(
            render("{% if [] | select %}T{% endif %}|{{ xs|reject('equalto', 'a')|list }}|{{ xs|map('upper') is iterable }}")
                .unwrap(),
            "T|['b', 'c']|True"
        );
        for bad in ["{{ xs|map('upper')|length }}", "{{ xs|selectattr('k')|tojson }}"] {
            assert!(render(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_made_by_repetition_add_as_lists() {
        assert_eq!(render("{{ 'q'|e }}{{ [1] * 2 + [2] }}").unwrap(), "q[1, 1, 2]");
        assert!(render("{{ 'q'|e }}{{ xs|map('upper') + xs|map('upper') }}").is_err());
    }

    #[test]
    fn doubling_strings_and_lists_stops_with_an_error() {
        for template in [
            "{{ 'q'|e }}{% set ns = namespace(s='x' * 1000) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "{% set ns = namespace(s='x' * 1000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "{{ 'q'|e }}{% set ns = namespace(l=[1] * 1000) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        ] {
            let err = render(template).unwrap_err();
            assert!(err.contains("over"), "{template}: {err}");
        }
    }

    #[test]
    fn tilde_joins_pythons_str_of_each_side() {
        assert_eq!(
            render("{{ 'a' ~ 1e-7 ~ none ~ [1.5] ~ {'k': none} ~ 1e16 ~ undefined_name ~ true }}").unwrap(),
            "a1e-07None[1.5]{'k': None}1e+16True"
        );
    }
}
