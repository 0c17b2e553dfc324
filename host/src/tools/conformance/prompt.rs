//! The prompt suite: rendered prompts against the host's own rendering of the
//! template, BOS not doubled, stop strings passed through, answers against
//! clembench's output rules, streamed pieces under several chunkings, and a
//! missing template as an error value.

use serde_json::{json, Value};

use super::models::{spec_of, spec_str, CONVERSATIONS, RAW_OUTPUTS, STOP};
use super::{is_variant, Row, Suite};
use crate::adapters::{wit, Adapter};

/// The template the `chat-template` contract picks for `model`.
fn reference_template(model: &wit::ModelInfo) -> Option<String> {
    let spec = spec_of(model);
    let custom = spec.get("custom_chat_template").and_then(Value::as_str);
    let premade = spec
        .get("premade_chat_template")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    match (premade, custom, model.builtin_template.as_deref()) {
        (false, Some(custom), _) => Some(custom.into()),
        (_, _, Some(builtin)) => Some(builtin.into()),
        (_, custom, None) => custom.map(str::to_string),
    }
}

/// The prompt the host renders for `turns`, with the `chat-template` context
/// (transformers' variables and order); a chat ending on an assistant turn is
/// rendered without a generation prompt and cut after that turn's text.
fn reference_prompt(adapter: &Adapter, model: &wit::ModelInfo, turns: &[(&str, &str)]) -> Option<String> {
    let template = reference_template(model)?;
    let last = turns
        .last()
        .filter(|(role, _)| *role == "assistant")
        .map(|(_, c)| c.trim());
    let messages: Vec<String> = turns
        .iter()
        .map(|(r, c)| format!("{{\"role\":{},\"content\":{}}}", json!(r), json!(c)))
        .collect();
    // Written by hand: the renderer keeps key order, `json!` would sort it.
    let context = format!(
        "{{\"messages\":[{}],\"tools\":null,\"documents\":null,\"add_generation_prompt\":{},\"bos_token\":{},\"eos_token\":{}}}",
        messages.join(","),
        last.is_none(),
        json!(model.bos_token.clone().unwrap_or_default()),
        json!(model.eos_token.clone().unwrap_or_default()),
    );
    let rendered = adapter.render_template(&template, &context).ok()?;
    match last {
        None => Some(rendered),
        Some(last) => rendered.rfind(last).map(|at| rendered[..at + last.len()].to_string()),
    }
}

/// clembench's output rules, in Rust: strip, split prefix, cot tag, `eos_to_cull`.
fn reference_answer(model: &wit::ModelInfo, raw: &str) -> Option<String> {
    let spec = spec_of(model);
    let mut text = raw.trim();
    if let Some(prefix) = spec_str(&spec, "output_split_prefix") {
        if let Some((_, after)) = text.rsplit_once(prefix) {
            text = after;
        }
    }
    if let Some(tag) = spec_str(&spec, "cot_end_tag") {
        if let Some((_, after)) = text.rsplit_once(tag) {
            text = after.trim();
        }
    }
    match spec_str(&spec, "eos_to_cull") {
        Some(pattern) => Some(regex::Regex::new(pattern).ok()?.replace_all(text, "").into_owned()),
        None => Some(text.to_string()),
    }
}

fn raw_output(model: &wit::ModelInfo, template: &str) -> String {
    let eos = model
        .eos_token
        .as_deref()
        .filter(|e| !e.is_empty())
        .unwrap_or("<|im_end|>");
    template.replace("{eos}", eos)
}

/// The ways a raw output is cut into chunks for streaming: whole, per character,
/// pairs of characters, thirds, and runs of seven bytes (rounded to characters).
pub(super) fn chunkings(raw: &str) -> Vec<(&'static str, Vec<&str>)> {
    let chars: Vec<(usize, char)> = raw.char_indices().collect();
    let by_chars = |n: usize| -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, (at, _)) in chars.iter().enumerate() {
            if i > 0 && i % n == 0 {
                out.push(&raw[start..*at]);
                start = *at;
            }
        }
        out.push(&raw[start..]);
        out
    };
    let by_bytes = |n: usize| -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < raw.len() {
            let mut end = (start + n).min(raw.len());
            while !raw.is_char_boundary(end) {
                end += 1;
            }
            out.push(&raw[start..end]);
            start = end;
        }
        out
    };
    let third = (raw.len() / 3).max(1);
    vec![
        ("whole", vec![raw]),
        ("chars", by_chars(1)),
        ("pairs", by_chars(2)),
        ("thirds", by_bytes(third)),
        ("7-byte", by_bytes(7)),
    ]
}

impl Suite<'_> {
    pub(super) fn conversations(&mut self) {
        let model = self.model;
        let mut bos_row = Row::new("add-bos not doubled");
        for (name, turns) in CONVERSATIONS {
            let mut row = Row::new(format!("prompt: {name}"));
            match self.shape(&mut row, model, turns, &[]) {
                Err(e) => row.problems.push(format!("shape-request failed: {e}")),
                Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
                Ok(wit::Request::Prompt(prompt)) => {
                    let mut at = 0;
                    for (_, content) in turns.iter() {
                        match prompt.text[at..].find(content) {
                            Some(i) => at += i + content.len(),
                            None => row
                                .problems
                                .push(format!("the prompt lacks (or misorders) {content:?}")),
                        }
                    }
                    match reference_prompt(self.adapter, model, turns) {
                        Some(expected) if expected != prompt.text => row.problems.push(format!(
                            "the prompt differs from the template's rendering: got {:?}, expected {:?}",
                            crate::adapters::truncate(&prompt.text),
                            crate::adapters::truncate(&expected)
                        )),
                        Some(_) => row
                            .notes
                            .push(format!("{} chars, = template rendering", prompt.text.len())),
                        None => row.notes.push(format!("{} chars", prompt.text.len())),
                    }
                    let bos = model.bos_token.as_deref().filter(|b| !b.is_empty());
                    let starts_with_bos = bos.is_some_and(|b| prompt.text.starts_with(b));
                    let expected_bos = model.add_bos && !starts_with_bos;
                    if prompt.add_bos != expected_bos {
                        bos_row.problems.push(format!(
                            "{name}: add-bos is {} but should be {expected_bos} (model add-bos {}, the prompt starts with BOS: {starts_with_bos})",
                            prompt.add_bos, model.add_bos
                        ));
                    }
                    if *name == "roles" {
                        self.rendered_prompt = Some(prompt.text.clone());
                    }
                    self.output(format!("prompt:{name}"), prompt.text);
                    self.output(format!("add-bos:{name}"), prompt.add_bos.to_string());
                }
            }
            self.finish(row);
        }
        self.finish(bos_row);
    }

    pub(super) fn stop_strings(&mut self) {
        let mut row = Row::new("stop strings passed through");
        match self.shape(&mut row, self.model, CONVERSATIONS[0].1, STOP) {
            Err(e) => row.problems.push(format!("shape-request failed: {e}")),
            Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
            Ok(wit::Request::Prompt(prompt)) => {
                for s in STOP {
                    if !prompt.stop.iter().any(|p| p == s) {
                        row.problems
                            .push(format!("stop {s:?} is missing from {:?}", prompt.stop));
                    }
                }
            }
        }
        self.finish(row);
    }

    pub(super) fn responses(&mut self) {
        let model = self.model;
        let mut row = Row::new("parse-response culls eos");
        for (i, template) in RAW_OUTPUTS.iter().enumerate() {
            let raw = raw_output(model, template);
            match self.parse(&mut row, model, &raw) {
                Err(e) => row.problems.push(format!("raw {raw:?}: {e}")),
                Ok(completion) => {
                    if let Some(expected) = reference_answer(model, &raw) {
                        if completion.text != expected {
                            row.problems
                                .push(format!("raw {raw:?} gave {:?}, expected {expected:?}", completion.text));
                        }
                    }
                    self.output(format!("response:{i}"), completion.text);
                }
            }
        }
        if spec_str(&spec_of(model), "eos_to_cull").is_none() {
            row.notes
                .push("the entry sets no eos_to_cull: answers are only trimmed".into());
        }
        self.finish(row);
    }

    pub(super) fn streaming(&mut self) {
        let model = self.model;
        let mut row = Row::new("stream pieces = final text");
        for (i, template) in RAW_OUTPUTS.iter().enumerate() {
            let raw = raw_output(model, template);
            let whole = match self.parse(&mut row, model, &raw) {
                Ok(c) => c.text,
                Err(e) => {
                    row.problems.push(format!("raw {raw:?}: parse-response failed: {e}"));
                    continue;
                }
            };
            for (how, chunks) in chunkings(&raw) {
                match self.stream(&mut row, model, &chunks) {
                    Err(e) => row.problems.push(format!("raw {raw:?} in {how} chunks: {e}")),
                    Ok((shown, text)) => {
                        if shown != text {
                            row.problems
                                .push(format!("{how} chunks: shown {shown:?} but final text {text:?}"));
                        }
                        if text != whole {
                            row.problems.push(format!(
                                "{how} chunks of {raw:?}: stream gave {text:?}, parse-response {whole:?}"
                            ));
                        }
                        if how == "chars" {
                            self.output(format!("stream:{i}"), text);
                        }
                    }
                }
            }
        }
        self.finish(row);
    }

    pub(super) fn missing_template(&mut self) {
        let turns = CONVERSATIONS[0].1;
        let mut spec = spec_of(self.model);
        spec.remove("custom_chat_template");
        spec.insert("premade_chat_template".into(), Value::Bool(true));
        let no_template = wit::ModelInfo {
            spec_json: Value::Object(spec).to_string(),
            builtin_template: None,
            ..self.model.clone()
        };
        let mut row = Row::new("missing template is an error value");
        match self.shape(&mut row, &no_template, turns, &[]) {
            Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
            Ok(wit::Request::Prompt(p)) => row.problems.push(format!(
                "shape-request made a prompt without any template: {:?}",
                crate::adapters::truncate(&p.text)
            )),
            Err(e) if is_variant(&e) => row.notes.push(e.to_string()),
            Err(e) => row.problems.push(format!("shape-request: {e}")),
        }
        self.finish(row);
    }
}
