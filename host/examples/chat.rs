//! A conversation that keeps its history, on a mock model whose reply echoes
//! the prompt it was given (so the second turn visibly carries the first).
//!
//! `cargo run --release --example chat` (or pass a registry name, e.g.
//! `-- SmolLM2-135M-Instruct`).

use lmhost::{Chat, Host};

fn main() -> lmhost::Result<()> {
    let query = std::env::args()
        .nth(1)
        .unwrap_or_else(|| r#"{"model_name": "echo", "backend": "mock", "reply": "(the model saw: {prompt})"}"#.into());
    let host = Host::new()?;
    let model = host.load(query.as_str())?;
    let mut chat: Chat<&lmhost::Model> = model.chat();
    chat.system("Be brief.");
    chat.params_mut().max_tokens = Some(64);
    for line in ["Hello! My name is Ada.", "What is my name?"] {
        println!("> {line}");
        chat.say_stream(line, |piece| print!("{piece}"))?;
        println!();
    }
    println!("({} messages in the history)", chat.history().len());
    Ok(())
}
