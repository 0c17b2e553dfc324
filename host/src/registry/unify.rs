//! Unification of feature structures, the registry's lookup rule.
//!
//! Two JSON values unify when they do not contradict each other:
//! - objects unify key by key, recursively; a key present on one side only is kept;
//! - lists unify element by element, and only at equal length;
//! - scalars unify when they are equal. Numbers compare by value (`1` and `1.0`
//!   unify), but a number never unifies with a boolean or a string (`1` ≠ `true`
//!   ≠ `"1"`), and `null` is a value like any other (`null` unifies only with
//!   `null`): a registry that says `null` means it.
//!
//! The result is a new value; neither input is changed. Pure: no I/O here.

use serde_json::{Map, Value};

/// Unify `query` with `entry`; `None` when they contradict each other.
///
/// Where both sides hold equal numbers written differently, the entry's spelling
/// is kept.
///
/// ```
/// use serde_json::json;
/// let merged = lmhost::registry::unify(
///     &json!({"model_name": "m", "quantization": "8bit"}),
///     &json!({"model_name": "m", "backend": "llamacpp"}),
/// );
/// assert_eq!(merged, Some(json!({"model_name": "m", "quantization": "8bit", "backend": "llamacpp"})));
/// ```
pub fn unify(query: &Value, entry: &Value) -> Option<Value> {
    match (query, entry) {
        (Value::Object(q), Value::Object(e)) => unify_objects(q, e).map(Value::Object),
        (Value::Array(q), Value::Array(e)) => {
            if q.len() != e.len() {
                return None;
            }
            q.iter()
                .zip(e)
                .map(|(q, e)| unify(q, e))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array)
        }
        (Value::Number(q), Value::Number(e)) => {
            let equal = match (q.as_i64(), e.as_i64(), q.as_u64(), e.as_u64()) {
                (Some(a), Some(b), _, _) => a == b,
                (_, _, Some(a), Some(b)) => a == b,
                _ => q.as_f64() == e.as_f64(),
            };
            equal.then(|| entry.clone())
        }
        (q, e) => (q == e).then(|| entry.clone()),
    }
}

fn unify_objects(query: &Map<String, Value>, entry: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut out = Map::with_capacity(query.len() + entry.len());
    // Entry order first: the result reads like the registry entry it came from.
    for (key, e) in entry {
        let value = match query.get(key) {
            Some(q) => unify(q, e)?,
            None => e.clone(),
        };
        out.insert(key.clone(), value);
    }
    for (key, q) in query {
        if !entry.contains_key(key) {
            out.insert(key.clone(), q.clone());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::unify;
    use serde_json::json;

    // The cases of the registry design discussion, one test each.

    #[test]
    fn empty_query_unifies_with_empty_to_empty() {
        assert_eq!(unify(&json!({}), &json!({})), Some(json!({})));
    }

    #[test]
    fn empty_query_unifies_with_entry_to_entry() {
        let entry = json!({"model_name": "model_b"});
        assert_eq!(unify(&json!({}), &entry), Some(entry));
    }

    #[test]
    fn different_query_does_not_unify() {
        assert_eq!(
            unify(&json!({"model_name": "model_a"}), &json!({"model_name": "model_b"})),
            None
        );
    }

    #[test]
    fn partially_conflicting_query_does_not_unify() {
        let query = json!({"model_name": "model_a", "backend": "backend_a"});
        let entry = json!({"model_name": "model_a", "backend": "backend_b"});
        assert_eq!(unify(&query, &entry), None);
    }

    #[test]
    fn subset_query_unifies_to_entry() {
        let entry = json!({"model_name": "model_a", "backend": "backend_b"});
        assert_eq!(unify(&json!({"model_name": "model_a"}), &entry), Some(entry));
    }

    #[test]
    fn query_with_more_keys_unifies_to_union() {
        let query = json!({"model_name": "model_a", "quantization": "8bit"});
        let entry = json!({"model_name": "model_a", "backend": "backend_b"});
        assert_eq!(
            unify(&query, &entry),
            Some(json!({"model_name": "model_a", "backend": "backend_b", "quantization": "8bit"}))
        );
    }

    #[test]
    fn nested_objects_unify_recursively() {
        let query = json!({"model_config": {"eos_to_cull": "</s>"}});
        let entry = json!({"model_config": {"premade_chat_template": true}});
        assert_eq!(
            unify(&query, &entry),
            Some(json!({"model_config": {"premade_chat_template": true, "eos_to_cull": "</s>"}}))
        );
        let conflict = json!({"model_config": {"premade_chat_template": false}});
        assert_eq!(unify(&conflict, &entry), None);
    }

    #[test]
    fn lists_unify_only_at_equal_length() {
        assert_eq!(
            unify(&json!(["en", "de"]), &json!(["en", "de"])),
            Some(json!(["en", "de"]))
        );
        assert_eq!(unify(&json!(["en"]), &json!(["en", "de"])), None);
        assert_eq!(unify(&json!(["de", "en"]), &json!(["en", "de"])), None);
        assert_eq!(unify(&json!([{}]), &json!([{"a": 1}])), Some(json!([{"a": 1}])));
    }

    #[test]
    fn numbers_unify_by_value_but_not_with_bools_or_strings() {
        assert_eq!(unify(&json!(1), &json!(1.0)), Some(json!(1.0)));
        assert_eq!(unify(&json!(1), &json!(true)), None);
        assert_eq!(unify(&json!(1), &json!("1")), None);
        assert_eq!(unify(&json!(true), &json!(true)), Some(json!(true)));
        assert_eq!(unify(&json!(u64::MAX), &json!(u64::MAX)), Some(json!(u64::MAX)));
        assert_eq!(unify(&json!(-1), &json!(u64::MAX)), None);
    }

    #[test]
    fn null_is_a_value() {
        assert_eq!(unify(&json!(null), &json!(null)), Some(json!(null)));
        assert_eq!(unify(&json!({"a": null}), &json!({"a": 1})), None);
        assert_eq!(unify(&json!({"a": null}), &json!({})), Some(json!({"a": null})));
    }

    #[test]
    fn key_order_does_not_matter_and_inputs_are_not_mutated() {
        let a = json!({"x": 1, "y": {"p": 1, "q": 2}});
        let b = json!({"y": {"q": 2, "p": 1}, "z": 3});
        let (a0, b0) = (a.clone(), b.clone());
        let ab = unify(&a, &b).unwrap();
        let ba = unify(&b, &a).unwrap();
        assert_eq!(ab, ba);
        assert_eq!((a, b), (a0, b0));
    }
}
