//! `lmhost serve`: the OpenAI-compatible server on its own async runtime.

use anyhow::{Context, Result};

use super::ServeArgs;
use crate::Host;

pub(super) fn serve(host: Host, args: ServeArgs) -> Result<()> {
    use crate::server::{shutdown_signal, Server, ServerConfig};
    let config = ServerConfig {
        host: args.host,
        port: args.port,
        max_concurrency: args.max_concurrency,
        max_queue: args.max_queue,
        max_body_bytes: args.max_body_bytes,
        preload: args.model,
        api_key: args.api_key.filter(|k| !k.is_empty()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(std::sync::Arc::new(host), config).await?;
        eprintln!("lmhost: serving on http://{}", server.local_addr());
        server.run(shutdown_signal()).await?;
        eprintln!("lmhost: stopped");
        Ok::<(), anyhow::Error>(())
    })
}
