//! Async streaming: [`lmhost::Model::stream`] yields text pieces as they are
//! generated, on tokio; [`lmhost::Model::generate_async`] returns the whole
//! answer.
//!
//! `cargo run --release --example stream` (or pass a registry name).

use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;
use lmhost::{GenerationParams, Host, Message};

#[tokio::main]
async fn main() -> lmhost::Result<()> {
    let query = std::env::args().nth(1).unwrap_or_else(|| {
        r#"{"model_name": "teller", "backend": "mock", "reply": "Once upon a time, a fox met a crow."}"#.into()
    });
    let host = Host::new()?;
    let model = Arc::new(host.load(query.as_str())?);
    let messages = vec![Message::user("Tell me a very short story.")];
    let mut pieces = model.stream(messages.clone(), GenerationParams::greedy(64));
    while let Some(piece) = pieces.next().await {
        print!("{}", piece?);
        let _ = std::io::stdout().flush();
    }
    println!();
    let whole = model.generate_async(messages, GenerationParams::greedy(64)).await?;
    println!(
        "({} tokens, finish_reason {})",
        whole.usage.completion_tokens, whole.finish_reason
    );
    Ok(())
}
