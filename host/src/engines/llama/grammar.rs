//! A [`Constraint`] (a `response_format`, or a tool call an adapter asked for)
//! as a llama.cpp grammar: the JSON schema (from a request or an adapter:
//! untrusted) is bounded here, then converted by llama.cpp's own
//! `json_schema_to_grammar` (C++), whose recursive walk must not meet a schema
//! deep enough to exhaust the stack or large enough to take long. The literal
//! prefix and suffix are wrapped around it in a rule of our own.

use serde_json::Value;

use crate::engines::Constraint;

/// Largest schema accepted, as compact JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;
/// Deepest nesting of objects and lists in a schema.
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// The GBNF grammar that only lets through text of `constraint`, and the name
/// of its root rule.
pub fn for_constraint(constraint: &Constraint) -> Result<(String, String), String> {
    let what = constraint.what;
    let schema = &constraint.schema;
    if !schema.is_object() {
        return Err(format!("`{what}`: the JSON schema must be an object"));
    }
    let text = schema.to_string();
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(format!(
            "`{what}`: the JSON schema is {} bytes, over the limit of {MAX_SCHEMA_BYTES}",
            text.len()
        ));
    }
    let depth = depth(schema);
    if depth > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "`{what}`: the JSON schema nests {depth} levels deep, over the limit of {MAX_SCHEMA_DEPTH}"
        ));
    }
    let mut grammar = llama_cpp_2::json_schema_to_grammar(&text)
        .map_err(|e| format!("`{what}`: the JSON schema cannot be enforced: {e}"))?;
    if constraint.prefix.is_empty() && constraint.suffix.is_empty() {
        return Ok((grammar, "root".into()));
    }
    // A rule name the schema's own rules do not use (they are named after its
    // properties).
    let mut name = String::from("lmhost-wrapped");
    while grammar.starts_with(&format!("{name} ::=")) || grammar.contains(&format!("\n{name} ::=")) {
        name.push('x');
    }
    grammar.push_str(&format!(
        "\n{name} ::= {} root {}\n",
        literal(&constraint.prefix),
        literal(&constraint.suffix)
    ));
    Ok((grammar, name))
}

/// A GBNF string literal matching exactly `text`.
fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

    fn format(schema: Value) -> Constraint {
        Constraint::response_format(&crate::ResponseFormat::JsonSchema { schema })
    }

    #[test]
    fn schemas_become_grammars_and_bounds_hold() {
        let (g, root) = for_constraint(&Constraint::response_format(&crate::ResponseFormat::JsonObject)).unwrap();
        assert!(g.contains("root") && root == "root", "{g}");
        let schema = json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}, "required": ["name"]});
        let (g, _) = for_constraint(&format(schema)).unwrap();
        assert!(g.contains("name"), "{g}");
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "array", "items": deep});
        }
        let err = for_constraint(&format(deep)).unwrap_err();
        assert!(err.contains("levels deep"), "{err}");
        let big = json!({"type": "string", "description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(for_constraint(&format(big)).unwrap_err().contains("bytes"));
        let not_object = for_constraint(&format(json!([1]))).unwrap_err();
        assert!(not_object.contains("must be an object"), "{not_object}");
    }

    #[test]
    fn a_prefix_and_suffix_are_wrapped_around_the_schema_as_exact_literals() {
        let schema = json!({"type": "object", "properties": {"lmhost-wrapped": {"type": "integer"}}});
        let c = Constraint {
            prefix: "<tool_call>\n\"\\".into(),
            schema,
            suffix: "\u{1}</tool_call>".into(),
            lazy: false,
            what: "tool_choice",
        };
        let (g, root) = for_constraint(&c).unwrap();
        assert!(root.starts_with("lmhost-wrapped"), "{root}");
        assert!(
            g.contains(&format!(
                "{root} ::= \"<tool_call>\\n\\\"\\\\\" root \"\\u0001</tool_call>\""
            )),
            "{g}"
        );
        assert_eq!(g.matches(&format!("\n{root} ::=")).count(), 1, "{g}");
    }
}
