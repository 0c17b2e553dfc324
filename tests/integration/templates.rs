//! The chat-template conformance corpus (`tests/fixtures/chat-templates/`):
//! real templates of current model families, each rendered over a set of
//! conversations, against what Python's jinja2 renders the way transformers'
//! `apply_chat_template` does (`generate.py` wrote the expected files). Every
//! rendering must be byte-identical, or fail where jinja2 fails. Rendered twice:
//! with the template crate directly (with the fixed clock the expected files
//! were made with), and in the template sandbox the adapters use (templates
//! that read the clock left out there).
//!
//! Also: the largest template of the corpus on an 800-message chat stays within
//! the default fuel, memory and deadline of the sandbox; and the context every
//! chat-template adapter (Rust, Python, JavaScript) passes a template.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lmhost::adapters::{wit, Adapter, AdapterRuntime, TemplateLimits};
use lmhost::tools::conformance::fixed_model_info;
use lmhost::GenerationParams;
use lmhost_tests::repo_root;

use crate::conformance::{js, python, rust};
use minijinja::Value;

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/fixtures/chat-templates")
}

/// The instant `generate.py` gives `strftime_now`.
fn fixed_clock() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2024, 7, 26)
        .unwrap()
        .and_hms_opt(9, 30, 0)
        .unwrap()
}

struct Template {
    name: String,
    source: String,
    bos: String,
    eos: String,
}

struct Set {
    name: String,
    data: Value,
}

/// JSON read into order-keeping values (Python dicts keep insertion order).
fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of(v: &Value, key: &str) -> String {
    v.get_attr(key)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn templates() -> Vec<Template> {
    let sources = read_json(&corpus_dir().join("SOURCES.json"));
    sources
        .try_iter()
        .unwrap()
        .map(|entry| {
            let file = str_of(&entry, "file");
            let source = std::fs::read_to_string(corpus_dir().join(&file)).unwrap();
            for key in ["source", "licence"] {
                assert!(!str_of(&entry, key).is_empty(), "{file}: SOURCES.json lacks `{key}`");
            }
            Template {
                name: str_of(&entry, "name"),
                source,
                bos: str_of(&entry, "bos_token"),
                eos: str_of(&entry, "eos_token"),
            }
        })
        .collect()
}

fn sets() -> Vec<Set> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join("messages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Set {
            name: p.file_stem().unwrap().to_string_lossy().into_owned(),
            data: read_json(p),
        })
        .collect()
}

/// The context as transformers passes it: messages, tools, documents,
/// add_generation_prompt, the special tokens, then the set's kwargs.
fn context(template: &Template, set: &Set) -> String {
    let get = |key: &str| set.data.get_attr(key).unwrap_or(Value::from(()));
    let mut pairs: Vec<(Value, Value)> = vec![
        (Value::from("messages"), get("messages")),
        (Value::from("tools"), get("tools")),
        (Value::from("documents"), Value::from(())),
        (Value::from("add_generation_prompt"), get("add_generation_prompt")),
        (Value::from("bos_token"), Value::from(template.bos.as_str())),
        (Value::from("eos_token"), Value::from(template.eos.as_str())),
    ];
    let kwargs = get("kwargs");
    if let Ok(keys) = kwargs.try_iter() {
        for key in keys {
            let value = kwargs.get_item(&key).unwrap();
            pairs.push((key, value));
        }
    }
    let map: Value = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    serde_json::to_string(&map).unwrap()
}

enum Expected {
    Text(String),
    Error(String),
}

fn expected(template: &Template, set: &Set) -> Expected {
    let base = corpus_dir().join("expected").join(&template.name).join(&set.name);
    if let Ok(text) = std::fs::read_to_string(base.with_extension("txt")) {
        return Expected::Text(text);
    }
    match std::fs::read_to_string(base.with_extension("err")) {
        Ok(err) => Expected::Error(err.trim().to_string()),
        Err(_) => panic!("{}.{{txt,err}} is missing (run generate.py)", base.display()),
    }
}

/// The renderings known to differ (`KNOWN-DIFFERENCES.md`: `- TEMPLATE × SET: why`).
fn known_differences() -> Vec<String> {
    let text = std::fs::read_to_string(corpus_dir().join("KNOWN-DIFFERENCES.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("- "))
        .filter_map(|l| l.split_once(':').map(|(at, _)| at.trim().to_string()))
        .collect()
}

/// Render the corpus with `render`; every difference, described, keyed by
/// `TEMPLATE × SET`.
fn differences(render: impl Fn(&Template, &str) -> Option<Result<String, String>>) -> (usize, Vec<(String, String)>) {
    let (templates, sets) = (templates(), sets());
    let mut compared = 0;
    let mut out = Vec::new();
    for template in &templates {
        for set in &sets {
            let Some(got) = render(template, &context(template, set)) else {
                continue;
            };
            compared += 1;
            let at = format!("{} × {}", template.name, set.name);
            match (expected(template, set), got) {
                (Expected::Text(want), Ok(got)) if want == got => {}
                (Expected::Text(want), Ok(got)) => {
                    let at = at.clone();
                    let first = want
                        .char_indices()
                        .zip(got.chars())
                        .find(|((_, a), b)| a != b)
                        .map_or(want.len().min(got.len()), |((i, _), _)| i);
                    let from = first.saturating_sub(40);
                    let show = |s: &str| {
                        let start = (from..=first)
                            .find(|&i| s.is_char_boundary(i))
                            .unwrap_or(0)
                            .min(s.len());
                        s[start..].chars().take(120).collect::<String>()
                    };
                    let why = format!(
                        "{at}: differs at byte {first}\n  jinja2: {:?}\n  lmhost: {:?}",
                        show(&want),
                        show(&got)
                    );
                    out.push((at, why));
                }
                (Expected::Text(_), Err(e)) => {
                    let why = format!("{at}: jinja2 renders, lmhost fails: {e}");
                    out.push((at, why));
                }
                (Expected::Error(want), Ok(_)) => {
                    let why = format!("{at}: jinja2 fails ({want}), lmhost renders");
                    out.push((at, why));
                }
                (Expected::Error(_), Err(_)) => {}
            }
        }
    }
    (compared, out)
}

#[test]
fn corpus_covers_the_families_the_issue_names() {
    let templates = templates();
    assert!(templates.len() >= 40, "only {} templates", templates.len());
    let names: Vec<String> = templates.iter().map(|t| t.name.to_lowercase()).collect();
    for family in [
        "llama-3",
        "qwen2.5",
        "qwen3",
        "mistral",
        "gemma-2",
        "gemma-3",
        "phi-3",
        "phi-4",
        "deepseek-r1",
        "deepseek-v3",
        "command-r",
        "glm",
        "granite",
        "gpt-oss",
        "smollm",
    ] {
        assert!(
            names.iter().any(|n| n.contains(family)),
            "no template of the {family} family in {names:?}"
        );
    }
    assert!(sets().len() >= 8);
}

/// Every difference is a known one (and every known one still differs).
fn assert_only_known(compared: usize, diffs: &[(String, String)], known: &[String]) {
    let unknown: Vec<&str> = diffs
        .iter()
        .filter(|(at, _)| !known.contains(at))
        .map(|(_, why)| why.as_str())
        .collect();
    assert!(
        unknown.is_empty(),
        "{} of {compared} renderings differ from jinja2 (not in KNOWN-DIFFERENCES.md):\n{}",
        unknown.len(),
        unknown.join("\n")
    );
    let fixed: Vec<&String> = known.iter().filter(|k| !diffs.iter().any(|(at, _)| at == *k)).collect();
    assert!(
        fixed.is_empty(),
        "no longer differ, delete from KNOWN-DIFFERENCES.md: {fixed:?}"
    );
}

#[test]
fn every_corpus_rendering_matches_jinja2() {
    let budget = lmhost_template::Budget::default();
    let (compared, diffs) =
        differences(|t, ctx| Some(lmhost_template::render_at(&t.source, ctx, &budget, Some(fixed_clock()))));
    eprintln!(
        "{} of {compared} renderings as jinja2 renders them",
        compared - diffs.len()
    );
    assert!(compared >= 40 * 8, "{compared}");
    assert_only_known(compared, &diffs, &known_differences());
}

#[test]
fn corpus_renders_the_same_in_the_sandbox() {
    let runtime = AdapterRuntime::new(None).unwrap();
    let limits = TemplateLimits::default();
    let (compared, diffs) = differences(|t, ctx| {
        (!t.source.contains("strftime_now")).then(|| runtime.render_template(&t.source, ctx, &limits))
    });
    assert!(compared > 200, "{compared}");
    // The known differences of templates that read the clock are not rendered here.
    let known: Vec<String> = known_differences()
        .into_iter()
        .filter(|k| {
            let name = k.split(" × ").next().unwrap_or_default();
            templates()
                .iter()
                .any(|t| t.name == name && !t.source.contains("strftime_now"))
        })
        .collect();
    assert_only_known(compared, &diffs, &known);
}

#[test]
fn the_largest_template_renders_an_800_message_chat_within_the_defaults() {
    let largest = templates().into_iter().max_by_key(|t| t.source.len()).unwrap();
    let mut messages = vec![serde_json::json!({"role": "system", "content": "You are a helpful assistant."})];
    for i in 0..800 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(serde_json::json!({"role": role, "content": format!("Message {i}: some text, a bit of it.")}));
    }
    messages.push(serde_json::json!({"role": "user", "content": "And now?"}));
    let context = serde_json::json!({
        "messages": messages, "tools": null, "documents": null, "add_generation_prompt": true,
        "bos_token": largest.bos, "eos_token": largest.eos,
    });
    let runtime = AdapterRuntime::new(None).unwrap();
    let started = Instant::now();
    let out = runtime
        .render_template(&largest.source, &context.to_string(), &TemplateLimits::default())
        .unwrap_or_else(|e| panic!("{} ({} bytes): {e}", largest.name, largest.source.len()));
    eprintln!(
        "{} ({} bytes) on 802 messages: {} bytes in {:?}",
        largest.name,
        largest.source.len(),
        out.len(),
        started.elapsed()
    );
    assert!(out.contains("Message 799: some text"), "{}", largest.name);
}

/// `generate.py --check` re-renders the corpus with Python's jinja2 and compares
/// it with the committed files, when jinja2 is installed (it is not needed to
/// run the corpus test above).
#[test]
fn expected_files_are_what_jinja2_renders() {
    let has_jinja2 = std::process::Command::new("python3")
        .args(["-c", "import jinja2"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_jinja2 {
        eprintln!("skipped: Python's jinja2 is not installed");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(corpus_dir().join("generate.py"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The variables every chat-template adapter gives a template, as transformers
/// does: `tools` and `documents` none, the registry's `chat_template_kwargs`
/// (overriding a special token, as there), and a chat ending on an assistant
/// turn continued rather than closed. Same prompts in every language.
#[test]
fn template_context_is_transformers_in_every_language() {
    let template = "{{ bos_token }}{% if enable_thinking is defined and not enable_thinking %}/no_think {% endif %}\
                    {{ tools is none }} {{ documents is none }} {{ add_generation_prompt }}|\
                    {% for m in messages %}{% for k, v in m.items() %}{{ k }}={{ v }},{% endfor %};{% endfor %}\
                    {% if add_generation_prompt %}<gen>{% else %}<eot>{% endif %}";
    let info = |kwargs: serde_json::Value| wit::ModelInfo {
        spec_json: serde_json::json!({
            "model_name": "conformance", "backend": "mock", "premade_chat_template": false,
            "custom_chat_template": template, "chat_template_kwargs": kwargs,
        })
        .to_string(),
        ..fixed_model_info()
    };
    let turns = |list: &[(&str, &str)]| -> Vec<wit::Message> {
        list.iter()
            .map(|(role, content)| wit::Message::new(*role, *content))
            .collect()
    };
    let params = wit::Params::from(&GenerationParams::greedy(8));
    let prompt = |adapter: &Adapter, model: &wit::ModelInfo, messages: &[wit::Message]| match adapter
        .shape_request(model, messages, &params)
    {
        Ok(wit::Request::Prompt(p)) => Ok(p.text),
        Ok(other) => panic!("{}: {other:?}", adapter.name()),
        Err(e) => Err(e.to_string()),
    };
    let adapters: Vec<&Adapter> = [Some(rust()), python(), js()].into_iter().flatten().collect();
    for adapter in adapters {
        let name = adapter.name();
        let asked = turns(&[("user", "hi")]);
        let got = prompt(
            adapter,
            &info(serde_json::json!({"enable_thinking": false, "bos_token": "[B]"})),
            &asked,
        );
        assert_eq!(
            got.as_deref(),
            Ok("[B]/no_think True True True|role=user,content=hi,;<gen>"),
            "{name}"
        );
        let got = prompt(adapter, &info(serde_json::json!(null)), &asked);
        assert_eq!(
            got.as_deref(),
            Ok("<s>True True True|role=user,content=hi,;<gen>"),
            "{name}"
        );
        // Continue the final assistant turn: no generation prompt, and the
        // prompt ends right after its (stripped) text.
        let partial = turns(&[("user", "hi"), ("assistant", "Hello, I am ")]);
        let got = prompt(adapter, &info(serde_json::json!({})), &partial);
        assert_eq!(
            got.as_deref(),
            Ok("<s>True True False|role=user,content=hi,;role=assistant,content=Hello, I am"),
            "{name}"
        );
        let err = prompt(adapter, &info(serde_json::json!({"messages": []})), &asked).unwrap_err();
        assert!(
            err.contains("`messages`") && err.contains("chat_template_kwargs"),
            "{name}: {err}"
        );
        let err = prompt(adapter, &info(serde_json::json!(["x"])), &asked).unwrap_err();
        assert!(err.contains("must be an object"), "{name}: {err}");
    }
}

/// The chat-template adapter gives a template what transformers gives it when a
/// chat has tools, assistant tool calls and tool results: through the adapter,
/// every template of the corpus that reads `tools` renders the tool sets as
/// jinja2 renders them (the known differences aside; templates that read the
/// clock or that jinja2 cannot render are left out).
#[test]
fn the_adapter_passes_tools_calls_and_results_as_transformers_does() {
    let runtime = AdapterRuntime::new(None).unwrap();
    let adapter = runtime
        .load("chat-template", None, lmhost::adapters::AdapterLimits::default())
        .unwrap();
    let known = known_differences();
    let (mut compared, mut diffs) = (0, Vec::new());
    let sets: Vec<Set> = sets().into_iter().filter(|s| s.name.starts_with("tools")).collect();
    assert_eq!(sets.len(), 3);
    for template in templates()
        .iter()
        .filter(|t| t.source.contains("tools") && !t.source.contains("strftime_now"))
    {
        for set in &sets {
            let at = format!("{} × {}", template.name, set.name);
            let Expected::Text(want) = expected(template, set) else {
                continue;
            };
            if known.contains(&at) {
                continue;
            }
            let data: serde_json::Value = serde_json::to_value(&set.data).unwrap();
            let messages: Vec<wit::Message> = data["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let text = |key: &str| m[key].as_str().map(str::to_string);
                    let calls = m["tool_calls"].as_array().into_iter().flatten();
                    wit::Message {
                        tool_calls: calls
                            .map(|c| wit::ToolCall {
                                id: c["id"].as_str().unwrap_or_default().into(),
                                name: c["function"]["name"].as_str().unwrap().into(),
                                arguments: c["function"]["arguments"].to_string(),
                            })
                            .collect(),
                        tool_call_id: text("tool_call_id"),
                        name: text("name"),
                        ..wit::Message::new(text("role").unwrap(), text("content").unwrap_or_default())
                    }
                })
                .collect();
            let tools = data["tools"].as_array().into_iter().flatten();
            let params = wit::Params {
                tools: tools
                    .map(|t| wit::Tool {
                        name: t["function"]["name"].as_str().unwrap().into(),
                        description: t["function"]["description"].as_str().map(str::to_string),
                        parameters: Some(t["function"]["parameters"].to_string()),
                        strict: false,
                    })
                    .collect(),
                ..wit::Params::plain()
            };
            let info = wit::ModelInfo {
                name: template.name.clone(),
                backend: "llamacpp".into(),
                spec_json: serde_json::json!({"chat_template_kwargs": data["kwargs"]}).to_string(),
                builtin_template: Some(template.source.clone()),
                bos_token: Some(template.bos.clone()),
                eos_token: Some(template.eos.clone()),
                add_bos: false,
                context_length: None,
            };
            compared += 1;
            match adapter.shape_request(&info, &messages, &params) {
                Ok(wit::Request::Prompt(p)) if p.text == want => {}
                Ok(wit::Request::Prompt(p)) => {
                    let first = want
                        .bytes()
                        .zip(p.text.bytes())
                        .position(|(a, b)| a != b)
                        .unwrap_or(want.len().min(p.text.len()));
                    let near = |s: &str| {
                        s.get(first.saturating_sub(30)..)
                            .unwrap_or(s)
                            .chars()
                            .take(90)
                            .collect::<String>()
                    };
                    diffs.push(format!(
                        "{at}: at byte {first}\n  jinja2: {:?}\n  adapter: {:?}",
                        near(&want),
                        near(&p.text)
                    ));
                }
                Ok(wit::Request::Http(_)) => diffs.push(format!("{at}: an HTTP request")),
                Err(e) => diffs.push(format!("{at}: {e}")),
            }
        }
    }
    eprintln!(
        "{} of {compared} tool renderings through the adapter as jinja2's",
        compared - diffs.len()
    );
    assert!(compared >= 60, "{compared}");
    assert!(diffs.is_empty(), "{} differ:\n{}", diffs.len(), diffs.join("\n"));
}
