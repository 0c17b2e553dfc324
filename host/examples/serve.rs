//! The OpenAI-compatible server from the library: bind a free loopback port,
//! ask it one question over HTTP, shut it down gracefully.
//!
//! `cargo run --release --example serve` (or pass a registry name, e.g.
//! `-- SmolLM2-135M-Instruct`; `lmhost serve` is the command-line equivalent).

use std::io::{Read, Write};
use std::sync::Arc;

use lmhost::server::{Server, ServerConfig};
use lmhost::Host;

#[tokio::main]
async fn main() -> lmhost::Result<()> {
    let model = std::env::args().nth(1).unwrap_or_else(|| "mock".into());
    let host = Arc::new(Host::new()?);
    let config = ServerConfig {
        preload: vec![model.clone()],
        ..ServerConfig::ephemeral()
    };
    let server = Server::bind(host, config).await?;
    let addr = server.local_addr();
    println!("serving on http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // A plain HTTP/1.1 request, as any OpenAI client would send it.
    let body =
        format!(r#"{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}], "max_tokens": 32}}"#);
    let response = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        write!(
            stream,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    })
    .await
    .expect("the client task runs")
    .map_err(|source| lmhost::Error::Io { context: "asking the server".into(), source })?;
    let json = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    println!("{json}");

    let _ = stop.send(());
    running.await.expect("the server task runs")?;
    println!("stopped");
    Ok(())
}
