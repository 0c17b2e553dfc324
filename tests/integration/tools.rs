//! Tool calls and reasoning through the library: on the real model, a required
//! or named `tool_choice` is enforced while decoding (the arguments validate
//! against the tool's schema at temperature 0.8), a call is answered and the
//! answer comes back; with the mock engine, each family's recorded output is
//! read into calls, reasoning and text, whole and streamed alike.

use lmhost::{Error, GenerationParams, Host, Message, StreamDelta, Tool, ToolCall, ToolChoice};
use lmhost_tests::{host, smollm_host, TempDir};
use serde_json::{json, Value};

const MODEL: &str = "SmolLM2-135M-Instruct";

fn weather() -> Tool {
    Tool::new(
        "get_weather",
        "The current weather in a city.",
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 40},
                "unit": {"enum": ["celsius", "fahrenheit"]}
            },
            "required": ["city", "unit"],
            "additionalProperties": false
        }),
    )
}

fn clock() -> Tool {
    Tool::new(
        "get_time",
        "The current time in a time zone.",
        json!({
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 40}},
            "required": ["zone"],
            "additionalProperties": false
        }),
    )
}

/// The call satisfies its tool's schema (checked by hand: exactly the keys, each of its type).
fn check_call(call: &ToolCall) -> Result<(), String> {
    let args: Value = serde_json::from_str(&call.arguments).map_err(|e| format!("not JSON ({e}): {call:?}"))?;
    let obj = args.as_object().ok_or_else(|| format!("not an object: {call:?}"))?;
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    match call.name.as_str() {
        "get_weather" => {
            if keys != ["city", "unit"] {
                return Err(format!("keys {keys:?}: {call:?}"));
            }
            let city = obj["city"].as_str().ok_or("city is not a string")?;
            if city.is_empty() || city.chars().count() > 40 {
                return Err(format!("city length {}", city.chars().count()));
            }
            if !["celsius", "fahrenheit"].contains(&obj["unit"].as_str().unwrap_or_default()) {
                return Err(format!("unit not in the enum: {call:?}"));
            }
        }
        "get_time" => {
            if keys != ["zone"] || !obj["zone"].is_string() {
                return Err(format!("not get_time's arguments: {call:?}"));
            }
        }
        other => return Err(format!("no tool `{other}`")),
    }
    if !call.id.starts_with("call_") {
        return Err(format!("id {:?}", call.id));
    }
    Ok(())
}

fn ask() -> Vec<Message> {
    vec![Message::user("What is the weather in Paris right now?")]
}

fn sampled(seed: u64, choice: ToolChoice) -> GenerationParams {
    GenerationParams {
        max_tokens: Some(96),
        temperature: Some(0.8),
        seed: Some(seed),
        tools: vec![weather(), clock()],
        tool_choice: Some(choice),
        ..GenerationParams::default()
    }
}

#[test]
fn required_and_named_tool_choices_are_enforced_on_sampled_answers() {
    let Some(host) = smollm_host() else { return };
    let model = host.load(MODEL).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for seed in 0..8 {
        let g = model.generate(&ask(), &sampled(seed, ToolChoice::Required)).unwrap();
        assert_eq!(g.finish_reason, "tool_calls", "seed {seed}: {g:?}");
        assert_eq!(g.tool_calls.len(), 1, "seed {seed}: {g:?}");
        check_call(&g.tool_calls[0]).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(g.response_text, "", "seed {seed}: the call is not text");
        names.insert(g.tool_calls[0].name.clone());
    }
    for seed in 0..3 {
        let g = model
            .generate(&ask(), &sampled(seed, ToolChoice::Function("get_time".into())))
            .unwrap();
        assert_eq!(g.tool_calls.len(), 1, "seed {seed}: {g:?}");
        assert_eq!(g.tool_calls[0].name, "get_time");
        check_call(&g.tool_calls[0]).unwrap();
    }
    assert!(!names.is_empty());
}

#[test]
fn a_streamed_call_equals_the_whole_one_and_a_round_trip_answers() {
    let Some(host) = smollm_host() else { return };
    let model = host.load(MODEL).unwrap();
    let params = sampled(5, ToolChoice::Required);
    let whole = model.generate(&ask(), &params).unwrap();
    let mut deltas: Vec<StreamDelta> = Vec::new();
    let streamed = model
        .generate_stream_deltas(&ask(), &params, |d| {
            deltas.push(d.clone());
            true
        })
        .unwrap();
    // (Whole and streamed are not compared token for token here: tests run in
    // parallel on one engine, and a batch's composition changes the logits.)
    let calls: Vec<ToolCall> = deltas.iter().flat_map(|d| d.tool_calls.clone()).collect();
    assert_eq!(
        calls, streamed.tool_calls,
        "the streamed calls are the generation's, ids included"
    );
    assert_eq!(streamed.finish_reason, "tool_calls");
    check_call(&calls[0]).unwrap();
    assert_eq!(whole.finish_reason, "tool_calls");

    // The call answered: the result reaches the prompt, and the model answers.
    let mut chat = model.chat();
    *chat.params_mut() = GenerationParams {
        tools: vec![weather(), clock()],
        tool_choice: Some(ToolChoice::Required),
        ..GenerationParams::greedy(96)
    };
    let asked = chat.say("What is the weather in Paris right now?").unwrap();
    assert_eq!(asked.finish_reason, "tool_calls", "{asked:?}");
    let call = asked.tool_calls[0].clone();
    chat.params_mut().tool_choice = Some(ToolChoice::None);
    chat.params_mut().max_tokens = Some(24);
    let answer = chat
        .tool_results(&[(call.id.as_str(), r#"{"temperature": 21, "sky": "clear"}"#)])
        .unwrap();
    let prompt = strings(&answer.prompt);
    assert!(
        prompt.contains("<tool_response>\n{\"temperature\": 21, \"sky\": \"clear\"}"),
        "{prompt}"
    );
    assert!(prompt.contains(&call.arguments), "the call is in the history: {prompt}");
    assert!(answer.tool_calls.is_empty(), "{answer:?}");
    assert!(!answer.response_text.is_empty(), "{answer:?}");
    assert_eq!(chat.history().len(), 4);
}

/// Every string in `value`, concatenated (the prompt's text, whatever its shape).
fn strings(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(strings).collect(),
        Value::Object(map) => map.values().map(strings).collect(),
        _ => String::new(),
    }
}

/// A mock model that replies `replies` in turn, with entry keys `extra`.
fn mock(replies: &[&str], extra: Value) -> (Host, TempDir) {
    let mut entry = json!({"model_name": "m", "backend": "mock", "replies": replies});
    entry
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    host(Some(&json!([entry]).to_string()))
}

/// Whole and streamed: the same calls, text and reasoning.
fn read_both(host: &Host, params: &GenerationParams) -> lmhost::Generation {
    let model = host.load("m").unwrap();
    let whole = model.generate(&ask(), params).unwrap();
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    let streamed = model
        .generate_stream_deltas(&ask(), params, |d| {
            text.push_str(&d.text);
            reasoning.push_str(&d.reasoning);
            calls.extend(d.tool_calls.iter().cloned());
            true
        })
        .unwrap();
    assert_eq!(text, streamed.response_text);
    assert_eq!(reasoning, streamed.reasoning.clone().unwrap_or_default());
    assert_eq!(calls, streamed.tool_calls);
    let strip = |g: &lmhost::Generation| {
        (
            g.response_text.clone(),
            g.reasoning.clone(),
            g.tool_calls
                .iter()
                .map(|c| (c.name.clone(), c.arguments.clone()))
                .collect::<Vec<_>>(),
            g.finish_reason.clone(),
        )
    };
    assert_eq!(strip(&whole), strip(&streamed));
    whole
}

fn with_tools() -> GenerationParams {
    GenerationParams {
        tools: vec![weather(), clock()],
        ..GenerationParams::default()
    }
}

#[test]
fn each_family_is_read_into_calls_text_and_reasoning() {
    let cases = [
        (
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}}\n</tool_call>",
            json!({}),
        ),
        (
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}}",
            json!({"tool_call_format": "llama3"}),
        ),
        (
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}, \"id\": \"a1b2c3d4e\"}]",
            json!({"tool_call_format": "mistral"}),
        ),
    ];
    for (reply, extra) in cases {
        let (host, _home) = mock(&[reply], extra);
        let g = read_both(&host, &with_tools());
        assert_eq!(g.finish_reason, "tool_calls", "{reply}: {g:?}");
        assert_eq!(g.tool_calls.len(), 1, "{reply}: {g:?}");
        assert_eq!(g.tool_calls[0].name, "get_weather");
        let args: Value = serde_json::from_str(&g.tool_calls[0].arguments).unwrap();
        assert_eq!(args, json!({"city": "Oslo", "unit": "celsius"}));
        // An id the model wrote (Mistral's) is kept; the others get one.
        let id = &g.tool_calls[0].id;
        assert!(id.starts_with("call_") || id == "a1b2c3d4e", "{:?}", g.tool_calls[0]);
        assert_eq!(g.response_text, "", "{reply}");
    }
}

#[test]
fn reasoning_is_kept_apart_and_counted() {
    let reply = "<think>\nThe user asks for 2 + 2. That is 4.\n</think>\n\nThe answer is 4.";
    for extra in [
        json!({"cot_start_tag": "<think>", "cot_end_tag": "</think>"}),
        json!({"premade_chat_template": false, "custom_chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}{# </think> #}"}),
    ] {
        let (host, _home) = mock(&[reply], extra.clone());
        let g = read_both(&host, &GenerationParams::default());
        assert_eq!(g.response_text, "The answer is 4.", "{extra}");
        assert_eq!(
            g.reasoning.as_deref(),
            Some("The user asks for 2 + 2. That is 4."),
            "{extra}"
        );
        assert!(g.usage.reasoning_tokens > 0, "{:?}", g.usage);
        assert_eq!(g.finish_reason, "stop");
    }
    // Without tags, reasoning stays in the text (clembench's rule).
    let (host, _home) = mock(&[reply], json!({}));
    let g = read_both(&host, &GenerationParams::default());
    assert!(g.response_text.starts_with("<think>"), "{g:?}");
    assert_eq!(g.reasoning, None);
}

#[test]
fn a_malformed_call_stays_in_the_text_and_the_host_goes_on() {
    let reply = "Let me look. <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": </tool_call> Sorry.";
    let (host, _home) = mock(&[reply], json!({}));
    let g = read_both(&host, &with_tools());
    assert!(g.tool_calls.is_empty(), "{g:?}");
    assert_eq!(g.response_text, reply, "nothing is lost");
    assert_eq!(g.finish_reason, "stop");
    // The host goes on; without tools a well-formed call is plain text.
    let call = "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>";
    let (host, _home) = mock(&[call], json!({}));
    let plain = read_both(&host, &GenerationParams::default());
    assert_eq!((plain.response_text.as_str(), plain.tool_calls.len()), (call, 0));
}

#[test]
fn tool_requests_are_checked() {
    let (host, _home) = mock(&["x"], json!({}));
    let model = host.load("m").unwrap();
    let bad = [
        (
            GenerationParams {
                tools: vec![weather(), weather()],
                ..GenerationParams::default()
            },
            "get_weather",
        ),
        (
            GenerationParams {
                tool_choice: Some(ToolChoice::Required),
                ..GenerationParams::default()
            },
            "tools",
        ),
        (
            GenerationParams {
                tool_choice: Some(ToolChoice::Function("nope".into())),
                ..with_tools()
            },
            "nope",
        ),
        (
            GenerationParams {
                tools: vec![Tool::new("t", "d", json!("not a schema"))],
                ..GenerationParams::default()
            },
            "t",
        ),
    ];
    for (params, named) in bad {
        let err = model.generate(&ask(), &params).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
        assert!(err.to_string().contains(named), "{err}");
    }
    // The mock engine has no grammar: a required call is refused, not unchecked.
    let required = GenerationParams {
        tool_choice: Some(ToolChoice::Required),
        ..with_tools()
    };
    let err = model.generate(&ask(), &required).unwrap_err();
    assert!(matches!(err, Error::Engine(_)), "{err:?}");
    // `auto` needs no grammar, `none` asks for no call.
    assert!(model.generate(&ask(), &with_tools()).is_ok());
    let bad_format = mock(&["x"], json!({"tool_call_format": "xml"}));
    let err = bad_format.0.load("m").unwrap_err();
    assert!(err.to_string().contains("tool_call_format"), "{err}");
}

#[test]
fn an_adapter_on_contract_0_1_serves_plain_requests_and_refuses_tools() {
    // The test-only Python adapter is built against 0.1 (`make adapters`); with
    // no `hostile` key it answers plainly.
    let (host, _home) = mock(&["Hello there."], json!({"adapter": "hostile-py"}));
    let Ok(model) = host.load("m") else {
        eprintln!("hostile-py is not built (make adapters): skipped");
        return;
    };
    assert_eq!(model.adapter().contract_version(), "0.1.0");
    assert_eq!(model.adapter().name(), "hostile-py");
    let g = model.generate(&ask(), &GenerationParams::default()).unwrap();
    assert_eq!(g.response_text, "Hello there.");
    let err = model.generate(&ask(), &with_tools()).unwrap_err().to_string();
    assert!(err.contains("lmhost:adapter@0.1.0") && err.contains("0.2.0"), "{err}");
    let history = [
        Message::user("Weather?"),
        Message {
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{}".into(),
            }],
            ..Message::assistant("")
        },
        Message::tool_result("call_1", "get_weather", "sunny"),
    ];
    assert!(model.generate(&history, &GenerationParams::default()).is_err());
}
