//! `lmhost run`: answer one prompt, streamed to standard output or as JSON.

use std::io::{Read, Write};

use anyhow::{Context, Result};

use super::RunArgs;
use crate::generation::ResponseFormat;
use crate::{GenerationParams, Host, Message};

pub(super) fn run_prompt(host: &Host, args: &RunArgs) -> Result<()> {
    let prompt = match args.prompt.as_deref() {
        Some(p) if p != "-" => p.to_string(),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the prompt from standard input")?;
            s
        }
    };
    let mut messages = Vec::new();
    if let Some(system) = &args.gen.system {
        messages.push(Message::system(system.as_str()));
    }
    messages.push(Message::user(prompt.trim_end_matches('\n')));
    let response_format = match &args.json_schema {
        None => None,
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading the JSON schema {}", path.display()))?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("the JSON schema {} is not JSON", path.display()))?;
            Some(ResponseFormat::JsonSchema { schema })
        }
    };
    let params = GenerationParams {
        stop: args.stop.clone(),
        response_format,
        ..args.gen.params()
    };
    let model = host.load(args.gen.model.as_str())?;
    if args.json {
        let generation = model.generate(&messages, &params)?;
        println!("{}", serde_json::to_string_pretty(&generation)?);
        return Ok(());
    }
    let mut stdout = std::io::stdout();
    let generation = model.generate_stream(&messages, &params, |piece| {
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
    })?;
    println!();
    tracing::info!(
        tokens = generation.usage.completion_tokens,
        tokens_per_second = format!("{:.1}", generation.tokens_per_second()),
        finish_reason = generation.finish_reason,
        "done"
    );
    Ok(())
}
