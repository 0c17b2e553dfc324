//! `lmhost chat`: the chat REPL (one turn per line, answers streamed, history
//! kept).

use std::io::Write;

use anyhow::{Context, Result};

use super::ChatArgs;
use crate::Host;

const CHAT_HELP: &str = "commands: /reset (forget the turns so far), /system TEXT (set the system prompt), /exit";

/// The chat REPL. Interactive on a terminal (prompt and notes on stderr); with
/// piped input it reads one turn per line and stops at end of input.
pub(super) fn chat(host: &Host, args: ChatArgs) -> Result<()> {
    use std::io::{BufRead, IsTerminal};
    let model = host.load(args.gen.model.as_str())?;
    let mut chat = model.chat();
    *chat.params_mut() = args.gen.params();
    if let Some(system) = args.gen.system {
        chat.system(system);
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("chatting with `{}`; {CHAT_HELP}", model.name());
    }
    let mut failed = 0;
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading standard input")?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix('/') {
            let (name, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
            match name {
                "exit" | "quit" => break,
                "reset" => {
                    chat.clear_history();
                    eprintln!("(history cleared)");
                }
                "system" if !rest.trim().is_empty() => {
                    chat.system(rest.trim());
                    eprintln!("(system prompt set)");
                }
                _ => eprintln!("unknown command `/{name}`; {CHAT_HELP}"),
            }
            continue;
        }
        let mut stdout = std::io::stdout();
        match chat.say_stream(line, |piece| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }) {
            Ok(generation) => {
                println!();
                tracing::info!(
                    tokens = generation.usage.completion_tokens,
                    tokens_per_second = format!("{:.1}", generation.tokens_per_second()),
                    "turn done"
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 && !interactive {
        anyhow::bail!("{failed} turns failed");
    }
    Ok(())
}
