//! `response_format` as a llama.cpp grammar: the JSON schema (from a request:
//! untrusted) is bounded here, then converted by llama.cpp's own
//! `json_schema_to_grammar` (C++), whose recursive walk must not meet a schema
//! deep enough to exhaust the stack or large enough to take long.

use serde_json::Value;

use crate::generation::ResponseFormat;

/// Largest schema accepted, as compact JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;
/// Deepest nesting of objects and lists in a schema.
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// The GBNF grammar (root rule `root`) that only lets through text of `format`.
pub fn for_format(format: &ResponseFormat) -> Result<String, String> {
    let schema = format.schema();
    if !schema.is_object() {
        return Err("`response_format`: the JSON schema must be an object".into());
    }
    let text = schema.to_string();
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(format!(
            "`response_format`: the JSON schema is {} bytes, over the limit of {MAX_SCHEMA_BYTES}",
            text.len()
        ));
    }
    let depth = depth(&schema);
    if depth > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "`response_format`: the JSON schema nests {depth} levels deep, over the limit of {MAX_SCHEMA_DEPTH}"
        ));
    }
    llama_cpp_2::json_schema_to_grammar(&text)
        .map_err(|e| format!("`response_format`: the JSON schema cannot be enforced: {e}"))
}

/// Nesting depth of a JSON value (a scalar is 0). Iterative: the value came
/// from a parser with its own depth limit, but this must not recurse either.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_become_grammars_and_bounds_hold() {
        let g = for_format(&ResponseFormat::JsonObject).unwrap();
        assert!(g.contains("root"), "{g}");
        let schema = json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}, "required": ["name"]});
        let g = for_format(&ResponseFormat::JsonSchema { schema }).unwrap();
        assert!(g.contains("name"), "{g}");
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "array", "items": deep});
        }
        let err = for_format(&ResponseFormat::JsonSchema { schema: deep }).unwrap_err();
        assert!(err.contains("levels deep"), "{err}");
        let big = json!({"type": "string", "description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(for_format(&ResponseFormat::JsonSchema { schema: big })
            .unwrap_err()
            .contains("bytes"));
        let not_object = for_format(&ResponseFormat::JsonSchema { schema: json!([1]) }).unwrap_err();
        assert!(not_object.contains("must be an object"), "{not_object}");
    }
}
