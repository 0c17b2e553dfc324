//! The download progress line on stderr (`indicatif`), drawn only when stderr
//! is a terminal: logs and pipes never see it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One file's progress: `{file} [#####     ] 12.0 MiB/48.0 MiB 25%`, or
/// `{file} 12.0 MiB` when the size is unknown.
pub(super) struct Progress(ProgressBar);

impl Progress {
    /// A bar for `file`, `start` bytes already there (a resumed download).
    pub(super) fn new(file: &str, start: u64, total: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(ProgressBar::hidden());
        }
        let (bar, template) = match total {
            Some(total) if total > 0 => (
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                "{msg} [{bar:20}] {binary_bytes}/{binary_total_bytes} {percent}%",
            ),
            _ => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                "{msg} {binary_bytes}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("# "));
        }
        bar.set_message(file.to_string());
        bar.set_position(start);
        Self(bar)
    }

    /// `done` bytes on disk so far.
    pub(super) fn update(&self, done: u64) {
        self.0.set_position(done);
    }

    /// Leave the last state on its line.
    pub(super) fn finish(&self) {
        self.0.abandon();
    }
}
