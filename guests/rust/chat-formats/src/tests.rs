//! Recorded outputs, written from each family's published format, read whole and
//! split at every byte.

use super::*;

fn call(name: &str, arguments: &str) -> Event {
    Event::Call(Call {
        id: None,
        name: name.into(),
        arguments: arguments.into(),
    })
}

fn text(s: &str) -> Event {
    Event::Text(s.into())
}

fn reasoning(s: &str) -> Event {
    Event::Reasoning(s.into())
}

/// Every way of cutting `output` into two chunks, and into one chunk per
/// character, gives the same coalesced events as reading it whole.
fn assert_split_invariant(format: Option<ToolFormat>, tags: Option<ReasoningTags>, in_reasoning: bool, output: &str) {
    let whole = parse(format, tags.clone(), in_reasoning, output);
    let run = |chunks: &[&str]| {
        let mut parser = Parser::new(format, tags.clone(), in_reasoning);
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.push(chunk));
        }
        events.extend(parser.finish());
        coalesce(events)
    };
    for (at, _) in output.char_indices().skip(1) {
        assert_eq!(
            run(&[&output[..at], &output[at..]]),
            whole,
            "split at byte {at} of {output:?}"
        );
    }
    let chars: Vec<String> = output.chars().map(String::from).collect();
    let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
    assert_eq!(run(&chars), whole, "one chunk per character of {output:?}");
}

/// Each recorded output with the events it must give.
fn recorded() -> Vec<(
    Option<ToolFormat>,
    Option<ReasoningTags>,
    bool,
    &'static str,
    Vec<Event>,
)> {
    let hermes = Some(ToolFormat::Hermes);
    let llama = Some(ToolFormat::Llama3);
    let mistral = Some(ToolFormat::Mistral);
    let think = Some(ReasoningTags::think());
    vec![
        (
            hermes,
            None,
            false,
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            vec![call("get_weather", r#"{"city":"Paris"}"#)],
        ),
        (
            hermes,
            None,
            false,
            "Let me check both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": [2, 3]}\"}\n</tool_call>",
            vec![
                text("Let me check both.\n"),
                call("a", r#"{"x":1}"#),
                text("\n"),
                call("b", r#"{"y":[2,3]}"#),
            ],
        ),
        (
            hermes,
            None,
            false,
            "Sure <tool_call>{\"name\": \"a\", \"arguments\": {\"x\": 1}\n</tool_call> then é",
            vec![
                text("Sure "),
                Event::Malformed {
                    raw: "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": 1}\n</tool_call>".into(),
                    reason: String::new(),
                },
                text(" then é"),
            ],
        ),
        (
            hermes,
            None,
            false,
            "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}",
            vec![call("a", "{}")],
        ),
        (hermes, None, false, "no call, just <tool_ text", vec![text("no call, just <tool_ text")]),
        (
            hermes,
            think.clone(),
            false,
            "<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{\"name\": \"w\", \"arguments\": {\"c\": \"Oslo\"}}\n</tool_call>",
            vec![reasoning("The user wants weather."), text("\n\n"), call("w", r#"{"c":"Oslo"}"#)],
        ),
        (
            llama,
            None,
            false,
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
            vec![call("get_weather", r#"{"city":"Paris"}"#)],
        ),
        (
            llama,
            None,
            false,
            "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"q\": \"x\"}}",
            vec![call("f", r#"{"q":"x"}"#)],
        ),
        (
            llama,
            None,
            false,
            "{\"answer\": 42, \"unit\": \"m\"}",
            vec![text("{\"answer\": 42, \"unit\": \"m\"}")],
        ),
        (
            llama,
            None,
            false,
            "The object {\"name\": \"f\", \"parameters\": {}} is an example.",
            vec![text("The object {\"name\": \"f\", \"parameters\": {}} is an example.")],
        ),
        (
            mistral,
            None,
            false,
            "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}, \"id\": \"abcDEF123\"}, {\"name\": \"b\", \"arguments\": {}}]",
            vec![
                Event::Call(Call {
                    id: Some("abcDEF123".into()),
                    name: "a".into(),
                    arguments: r#"{"x":1}"#.into(),
                }),
                call("b", "{}"),
            ],
        ),
        (
            mistral,
            None,
            false,
            "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]b[ARGS]{}",
            vec![call("get_weather", r#"{"city": "Paris"}"#), call("b", "{}")],
        ),
        (
            mistral,
            None,
            false,
            "[TOOL_CALLS][{\"name\": 3}] after",
            vec![
                Event::Malformed {
                    raw: "[TOOL_CALLS][{\"name\": 3}]".into(),
                    reason: String::new(),
                },
                text(" after"),
            ],
        ),
        (
            None,
            think.clone(),
            true,
            "  Let me think.\nStill thinking.  </think>The answer is 4.",
            vec![reasoning("Let me think.\nStill thinking."), text("The answer is 4.")],
        ),
        (
            None,
            think.clone(),
            false,
            "\n<think> unfinished",
            vec![reasoning("unfinished")],
        ),
        (None, think.clone(), false, "<thin is not a tag", vec![text("<thin is not a tag")]),
        (None, think, false, "", vec![]),
    ]
}

/// Malformed reasons are prose: compare everything else.
fn without_reasons(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| match e {
            Event::Malformed { raw, .. } => Event::Malformed {
                raw,
                reason: String::new(),
            },
            other => other,
        })
        .collect()
}

#[test]
fn recorded_outputs_give_their_events() {
    for (format, tags, in_reasoning, output, expected) in recorded() {
        let events = without_reasons(parse(format, tags, in_reasoning, output));
        assert_eq!(events, expected, "{output:?}");
    }
}

#[test]
fn recorded_outputs_give_the_same_events_split_at_every_byte() {
    for (format, tags, in_reasoning, output, _) in recorded() {
        assert_split_invariant(format, tags, in_reasoning, output);
    }
}

#[test]
fn malformed_calls_are_reported_with_their_text_and_a_reason() {
    let cases = [
        (ToolFormat::Hermes, "<tool_call>{\"arguments\": {}}</tool_call>", "name"),
        (
            ToolFormat::Hermes,
            "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>",
            "not a JSON object",
        ),
        (ToolFormat::Hermes, "<tool_call>{\"name\": \"a\"", "unterminated"),
        (ToolFormat::Mistral, "[TOOL_CALLS]", "nothing"),
        (ToolFormat::Mistral, "[TOOL_CALLS]{\"name\": \"a\"}", "neither"),
        (ToolFormat::Mistral, "[TOOL_CALLS]f[ARGS][1]", "not a JSON object"),
        (ToolFormat::Mistral, "[TOOL_CALLS]f[ARGS]{\"a\": ", "unterminated"),
        (
            ToolFormat::Llama3,
            "<|python_tag|>brave_search.call(query=\"x\")",
            "not JSON",
        ),
    ];
    for (format, output, why) in cases {
        let events = parse(Some(format), None, false, output);
        let Some(Event::Malformed { raw, reason }) = events.first() else {
            panic!("{output:?} gave {events:?}");
        };
        assert!(
            output.starts_with(raw.as_str()),
            "{raw:?} is not the start of {output:?}"
        );
        assert!(reason.contains(why), "{output:?}: {reason:?} does not say {why:?}");
        let all: String = events
            .iter()
            .map(|e| match e {
                Event::Malformed { raw, .. } | Event::Text(raw) => raw.clone(),
                other => panic!("{output:?} gave {other:?}"),
            })
            .collect();
        assert_eq!(all, output, "nothing of a malformed output is lost");
        assert_split_invariant(Some(format), None, false, output);
    }
}

#[test]
fn hostile_outputs_never_panic_and_lose_nothing() {
    let outputs = [
        "<tool_call><tool_call></tool_call></tool_call>",
        "[TOOL_CALLS][TOOL_CALLS][[[[",
        "{{{{{{{{",
        "<|python_tag|><|python_tag|>",
        "</think><think></think>",
        "[TOOL_CALLS]ééé[ARGS]{}",
        "\u{0}<tool_call>\u{0}",
    ];
    for output in outputs {
        for format in [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Mistral] {
            for in_reasoning in [false, true] {
                assert_split_invariant(Some(format), Some(ReasoningTags::think()), in_reasoning, output);
            }
        }
    }
}

#[test]
fn a_call_rendered_by_a_format_parses_back() {
    let calls = vec![
        Call {
            id: None,
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris","days":[1,2]}"#.into(),
        },
        Call {
            id: None,
            name: "noop".into(),
            arguments: "{}".into(),
        },
    ];
    for format in [ToolFormat::Hermes, ToolFormat::Mistral] {
        let events = parse(Some(format), None, false, &format.render_calls(&calls));
        let parsed: Vec<Call> = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Call(c) => Some(c),
                Event::Text(t) if t.trim().is_empty() => None,
                other => panic!("{format:?}: {other:?}"),
            })
            .collect();
        assert_eq!(parsed, calls, "{format:?}");
    }
    let one = ToolFormat::Llama3.render_calls(&calls[..1]);
    assert_eq!(
        parse(Some(ToolFormat::Llama3), None, false, &one),
        vec![Event::Call(calls[0].clone())]
    );
}

#[test]
fn constraints_are_a_call_of_one_of_the_tools() {
    let tools = vec![
        ToolSpec {
            name: "a".into(),
            parameters: json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
        },
        ToolSpec {
            name: "b".into(),
            parameters: json!({"type": "object"}),
        },
    ];
    let hermes = ToolFormat::Hermes.constraint(&tools);
    assert_eq!(
        (hermes.prefix.as_str(), hermes.suffix.as_str()),
        ("<tool_call>\n", "\n</tool_call>")
    );
    let schema: Value = serde_json::from_str(&hermes.schema).unwrap();
    assert_eq!(schema["anyOf"][0]["properties"]["name"]["const"], "a");
    assert_eq!(
        schema["anyOf"][0]["properties"]["arguments"]["properties"]["x"]["type"],
        "integer"
    );
    assert_eq!(schema["anyOf"][1]["required"], json!(["name", "arguments"]));

    let llama = ToolFormat::Llama3.constraint(&tools[..1]);
    let schema: Value = serde_json::from_str(&llama.schema).unwrap();
    assert_eq!(schema["properties"]["name"]["const"], "a");
    assert!(schema["properties"]["parameters"].is_object());
    assert_eq!(llama.prefix, "");

    let mistral = ToolFormat::Mistral.constraint(&tools);
    let schema: Value = serde_json::from_str(&mistral.schema).unwrap();
    assert_eq!(
        (mistral.prefix.as_str(), schema["type"].as_str()),
        ("[TOOL_CALLS]", Some("array"))
    );
}

#[test]
fn formats_are_named_and_detected() {
    for format in [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Mistral] {
        assert_eq!(ToolFormat::from_name(format.name()), Some(format));
    }
    assert_eq!(ToolFormat::from_name(" Qwen3 "), Some(ToolFormat::Hermes));
    assert_eq!(ToolFormat::from_name("llama3_json"), Some(ToolFormat::Llama3));
    assert_eq!(ToolFormat::from_name("xml"), None);
    assert!(ToolFormat::known_names().contains(&"mistral"));

    let qwen = "{%- if tools %}<tools>{% endif %}{{- '<tool_call>\\n' }}";
    assert_eq!(ToolFormat::detect(qwen), Some(ToolFormat::Hermes));
    let mistral = "{%- if message.tool_calls %}[TOOL_CALLS][{% endif %}";
    assert_eq!(ToolFormat::detect(mistral), Some(ToolFormat::Mistral));
    let llama = "{{- \"Environment: ipython\\n\" }}{{- '<|python_tag|>' }}";
    assert_eq!(ToolFormat::detect(llama), Some(ToolFormat::Llama3));
    let chatml = "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}";
    assert_eq!(ToolFormat::detect(chatml), None);

    let r1 = "{{'<｜Assistant｜><think>\\n'}}{% if '</think>' in content %}";
    assert_eq!(ReasoningTags::detect(r1), Some(ReasoningTags::think()));
    assert_eq!(ReasoningTags::detect(chatml), None);
    assert!(ReasoningTags::think().prompt_opens("<|im_start|>assistant\n<think>\n"));
    assert!(!ReasoningTags::think().prompt_opens("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
}
