//! Render time per template size, over the conformance corpus
//! (`tests/fixtures/chat-templates/`): each template on its `multi-turn` set
//! (6 messages) and on an 800-message chat, natively (the sandbox adds its
//! instance start on top: see BENCHMARKS.md). Prints a Markdown table.
//!
//! `cargo run --release -p lmhost-template --example render_time`

use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(template: &str, context: &str, runs: usize) -> Result<(Duration, usize), String> {
    let budget = lmhost_template::Budget::default();
    let mut times = Vec::with_capacity(runs);
    let mut len = 0;
    for _ in 0..runs {
        let started = Instant::now();
        len = lmhost_template::render(template, context, &budget)?.len();
        times.push(started.elapsed());
    }
    Ok((median(times), len))
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/chat-templates");
    let sources: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("SOURCES.json")).expect("SOURCES.json")).unwrap();
    let multi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("messages/multi-turn.json")).unwrap()).unwrap();
    let mut rows = Vec::new();
    for entry in sources.as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let source = std::fs::read_to_string(dir.join(entry["file"].as_str().unwrap())).unwrap();
        let context = |messages: serde_json::Value| {
            serde_json::json!({
                "messages": messages, "tools": null, "documents": null, "add_generation_prompt": true,
                "bos_token": entry["bos_token"], "eos_token": entry["eos_token"],
            })
            .to_string()
        };
        let mut long = vec![serde_json::json!({"role": "system", "content": "You are a helpful assistant."})];
        for i in 0..800 {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            long.push(serde_json::json!({"role": role, "content": format!("Message {i}: some text, a bit of it.")}));
        }
        long.push(serde_json::json!({"role": "user", "content": "And now?"}));
        let short = time(&source, &context(multi["messages"].clone()), 50);
        let long = time(&source, &context(serde_json::Value::Array(long)), 5);
        rows.push((source.len(), name.to_string(), short, long));
    }
    rows.sort_by_key(|r| r.0);
    println!("| template | bytes | 6 messages | 802 messages |");
    println!("|---|---:|---:|---:|");
    let show = |r: &Result<(Duration, usize), String>| match r {
        Ok((d, _)) => format!("{:.0} µs", d.as_secs_f64() * 1e6),
        Err(e) => format!("error: {}", e.chars().take(40).collect::<String>()),
    };
    for (bytes, name, short, long) in &rows {
        println!("| {name} | {bytes} | {} | {} |", show(short), show(long));
    }
}
