//! `response_format` on the real model: JSON enforced while decoding by a
//! llama.cpp grammar made from the request's JSON schema. Sampled at
//! temperature 0.8, every answer must parse and satisfy the schema; engines
//! that cannot enforce a format refuse the call instead of answering unchecked.

use lmhost::{Error, GenerationParams, Host, Message, ResponseFormat};
use lmhost_tests::{host, smollm_host, TempDir};
use serde_json::{json, Value};

fn shared() -> Option<&'static Host> {
    smollm_host()
}

const MODEL: &str = "SmolLM2-135M-Instruct";

fn city_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1, "maxLength": 24},
            "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
            "capital": {"type": "boolean"},
            "continent": {"enum": ["Africa", "America", "Asia", "Europe", "Oceania"]}
        },
        "required": ["city", "population", "capital", "continent"],
        "additionalProperties": false
    })
}

/// The answer satisfies [`city_schema`]: exactly its four keys, each of its type and range.
fn check_city(text: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text:?}"))?;
    let obj = v.as_object().ok_or_else(|| format!("not an object: {text}"))?;
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["capital", "city", "continent", "population"] {
        return Err(format!("keys {keys:?}: {text}"));
    }
    let city = obj["city"].as_str().ok_or("city is not a string")?;
    if city.is_empty() || city.chars().count() > 24 {
        return Err(format!("city length {}: {text}", city.chars().count()));
    }
    let population = obj["population"].as_u64().ok_or("population is not an integer ≥ 0")?;
    if population > 100_000_000 {
        return Err(format!("population {population} over the maximum"));
    }
    obj["capital"].as_bool().ok_or("capital is not a boolean")?;
    let continent = obj["continent"].as_str().unwrap_or_default();
    if !["Africa", "America", "Asia", "Europe", "Oceania"].contains(&continent) {
        return Err(format!("continent {continent:?} not in the enum"));
    }
    Ok(())
}

fn ask() -> Vec<Message> {
    vec![Message::user(
        "Describe Paris as JSON with city, population, capital and continent.",
    )]
}

#[test]
fn json_schema_is_enforced_on_every_sampled_answer() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let params = GenerationParams {
            max_tokens: Some(128),
            temperature: Some(0.8),
            seed: Some(seed),
            response_format: Some(ResponseFormat::JsonSchema { schema: city_schema() }),
            ..GenerationParams::default()
        };
        let g = model.generate(&ask(), &params).unwrap();
        assert_eq!(g.finish_reason, "stop", "seed {seed}: {g:?}");
        check_city(&g.response_text).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        distinct.insert(g.response_text);
    }
    // Sampled, not fixed: the grammar constrains the shape, not the content.
    assert!(distinct.len() > 1, "{distinct:?}");
}

#[test]
fn json_object_and_streaming_are_enforced_too() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let params = GenerationParams {
        max_tokens: Some(96),
        temperature: Some(0.8),
        seed: Some(7),
        response_format: Some(ResponseFormat::JsonObject),
        ..GenerationParams::default()
    };
    let g = model.generate(&ask(), &params).unwrap();
    if g.finish_reason == "stop" {
        let v: Value = serde_json::from_str(&g.response_text).unwrap_or_else(|e| panic!("{e}: {g:?}"));
        assert!(v.is_object(), "{v}");
    } else {
        assert!(g.response_text.trim_start().starts_with('{'), "{g:?}");
    }
    let schema = GenerationParams {
        response_format: Some(ResponseFormat::JsonSchema { schema: city_schema() }),
        ..params
    };
    let whole = model.generate(&ask(), &schema).unwrap();
    let mut pieces = String::new();
    let streamed = model.generate_stream(&ask(), &schema, |p| pieces.push_str(p)).unwrap();
    assert_eq!(streamed.response, whole.response);
    assert_eq!(pieces, streamed.response_text);
    check_city(&streamed.response_text).unwrap();
}

#[test]
fn formats_that_cannot_be_enforced_are_refused() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let mut deep = json!({"type": "string"});
    for _ in 0..40 {
        deep = json!({"type": "array", "items": deep});
    }
    for (schema, want) in [
        (deep, "levels deep"),
        (
            json!({"type": "object", "properties": {"x": {"$ref": "https://example.invalid/s.json"}}}),
            "response_format",
        ),
    ] {
        let params = GenerationParams {
            response_format: Some(ResponseFormat::JsonSchema { schema }),
            ..GenerationParams::greedy(8)
        };
        let err = model.generate(&ask(), &params).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    // An engine without grammars: an error, never unchecked text.
    let (mock_host, _home) = host_with_mock();
    let mock = mock_host.load("json-mock").unwrap();
    let params = GenerationParams {
        response_format: Some(ResponseFormat::JsonObject),
        ..GenerationParams::greedy(8)
    };
    let err = mock.generate(&ask(), &params).unwrap_err();
    assert!(matches!(err, Error::Engine(_)), "{err:?}");
    assert!(err.to_string().contains("cannot enforce `response_format`"), "{err}");
    assert!(mock.generate(&ask(), &GenerationParams::greedy(8)).is_ok());
}

fn host_with_mock() -> (Host, TempDir) {
    host(Some(
        r#"[{"model_name": "json-mock", "backend": "mock", "reply": "not json"}]"#,
    ))
}
