//! The decoding thread of one model: continuous batching over per-sequence KV
//! streams.
//!
//! Requests arrive as [`Job`]s and take a free sequence slot in arrival order
//! (they wait while all `parallel` slots are busy). Every step builds one batch:
//! the next token of each generating sequence, then prompt chunks of newly
//! admitted ones, and decodes it once.
//!
//! Each slot has its own KV stream of `n_ctx` cells (the cache is not unified).
//! That costs memory (`parallel` × `n_ctx` cells) but buys determinism: a
//! sequence attends only to its own stream, which a finished request leaves
//! empty so the next one starts at cell 0, and the weight products are computed
//! row by row, so a request's tokens are bit-identical whether it runs alone or
//! batched with others. A unified cache places a sequence's cells wherever there
//! is room, which changes the order of floating-point sums and, under greedy
//! decoding, the text.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;

use crate::engines::text::TextAccumulator;
use crate::engines::{EngineOutput, FinishReason};

/// Tokens per decode call (prompt chunks and generated tokens together).
const BATCH_TOKENS: usize = 512;

/// How long the thread waits, idle after work, before handing the heap's free
/// memory back to the OS ([`trim_heap`]): long enough for the requests' own
/// threads to have dropped their buffers.
const TRIM_AFTER_IDLE: Duration = Duration::from_millis(200);

/// One request for the decoding thread.
pub(super) struct Job {
    pub tokens: Vec<LlamaToken>,
    pub max_tokens: u32,
    pub sampler: LlamaSampler,
    /// A `response_format` grammar, checked apart from `sampler` (see [`sample_constrained`]).
    pub grammar: Option<LlamaSampler>,
    pub stops: Vec<String>,
    pub events: mpsc::Sender<Event>,
    pub cancel: Arc<AtomicBool>,
    pub submitted: Instant,
}

/// What the decoding thread tells a request.
pub(super) enum Event {
    /// Raw text, safe to show (no half character, no possible stop-string start).
    Piece(String),
    /// The request finished.
    Done(EngineOutput),
    /// The request failed.
    Failed(String),
}

pub(super) struct SchedulerConfig {
    pub name: String,
    pub n_ctx: u32,
    pub parallel: u32,
    /// Threads decoding one token per sequence (generation).
    pub threads: i32,
    /// Threads evaluating prompts (many tokens per step).
    pub threads_batch: i32,
}

/// Start the decoding thread; its context is created before this returns.
pub(super) fn start(
    backend: &'static LlamaBackend,
    model: Arc<LlamaModel>,
    config: SchedulerConfig,
) -> Result<mpsc::Sender<Job>, String> {
    let (jobs, receiver) = mpsc::channel::<Job>();
    let (ready, started) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name(format!("lmhost-llama-{}", config.name))
        .spawn(move || {
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(config.n_ctx.saturating_mul(config.parallel)))
                .with_n_batch(BATCH_TOKENS as u32)
                .with_n_ubatch(BATCH_TOKENS as u32)
                .with_n_seq_max(config.parallel)
                .with_kv_unified(false)
                .with_n_threads(config.threads)
                .with_n_threads_batch(config.threads_batch);
            let ctx = match model.new_context(backend, params) {
                Ok(ctx) => {
                    let _ = ready.send(Ok(()));
                    ctx
                }
                Err(e) => {
                    let cells = u64::from(config.n_ctx) * u64::from(config.parallel);
                    let _ = ready.send(Err(format!(
                        "cannot create a context of {} sequences × {} tokens ({cells} KV cells): {e}; lower `parallel` or `n_ctx`",
                        config.parallel, config.n_ctx
                    )));
                    return;
                }
            };
            Scheduler::new(&model, ctx, config).run(receiver);
        })
        .map_err(|e| format!("cannot start the decoding thread: {e}"))?;
    started
        .recv()
        .map_err(|_| "the decoding thread died while starting".to_string())??;
    Ok(jobs)
}

/// Hand the free memory of every malloc arena back to the OS (glibc's
/// `malloc_trim`), once the process has gone quiet. glibc keeps what a thread
/// freed in that thread's arena for reuse, and the threads of a server (HTTP
/// workers, adapter sessions, the compiler's pool at start-up) each have one:
/// after a run of requests `lmhost serve` held ~34 MiB of free heap this way
/// (BENCHMARKS.md, "Resident memory"). Costs well under a millisecond here,
/// once per quiet spell.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let (before, started) = (resident_kib(), Instant::now());
        // SAFETY: malloc_trim only returns free pages to the kernel.
        unsafe { libc::malloc_trim(0) };
        let elapsed_us = started.elapsed().as_micros() as u64;
        tracing::debug!(
            elapsed_us,
            rss_before_kib = before,
            rss_after_kib = resident_kib(),
            "heap trimmed"
        );
    }
}

/// This process's resident memory in KiB (`/proc/self/statm`), 0 where unknown.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096) / 1024
}

/// A request occupying a sequence slot.
struct Active {
    job: Job,
    seq: i32,
    /// Prompt tokens already decoded.
    prompt_done: usize,
    /// Tokens in the KV cache for this sequence (= next position).
    n_past: i32,
    /// The token to feed next, once generating.
    next: Option<LlamaToken>,
    generated: u32,
    /// The generated token ids.
    ids: Vec<u32>,
    acc: TextAccumulator,
    admitted: Instant,
    prompt_time: Option<Duration>,
    first_token: Option<Duration>,
}

struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    config: SchedulerConfig,
    slots: Vec<Option<Active>>,
    queue: VecDeque<Job>,
    batch: LlamaBatch<'static>,
}

impl<'m> Scheduler<'m> {
    fn new(model: &'m LlamaModel, ctx: LlamaContext<'m>, config: SchedulerConfig) -> Self {
        let parallel = config.parallel as usize;
        Self {
            model,
            ctx,
            slots: (0..parallel).map(|_| None).collect(),
            queue: VecDeque::new(),
            batch: LlamaBatch::new(BATCH_TOKENS, config.parallel as i32),
            config,
        }
    }

    fn idle(&self) -> bool {
        self.queue.is_empty() && self.slots.iter().all(Option::is_none)
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            if self.idle() {
                // Quiet after work (or after loading, which left garbage too):
                // trim once, then wait as long as it takes.
                let next = match jobs.recv_timeout(TRIM_AFTER_IDLE) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        trim_heap();
                        jobs.recv().ok()
                    }
                    other => other.ok(),
                };
                match next {
                    Some(job) => self.queue.push_back(job),
                    None => return, // the engine was dropped
                }
            }
            while let Ok(job) = jobs.try_recv() {
                self.queue.push_back(job);
            }
            self.drop_cancelled();
            self.admit();
            self.step();
        }
    }

    fn drop_cancelled(&mut self) {
        self.queue.retain(|job| !job.cancel.load(Ordering::Relaxed));
        for seq in 0..self.slots.len() {
            if self.slots[seq]
                .as_ref()
                .is_some_and(|a| a.job.cancel.load(Ordering::Relaxed))
            {
                self.finish(seq, FinishReason::Cancelled);
            }
        }
    }

    /// Admit queued jobs, in arrival order, while a slot is free. (Each job was
    /// checked against `n_ctx`, the size of every slot's stream, before queueing.)
    fn admit(&mut self) {
        while !self.queue.is_empty() {
            let Some(seq) = self.slots.iter().position(Option::is_none) else {
                break;
            };
            let job = self.queue.pop_front().expect("not empty");
            let acc = TextAccumulator::new(&job.stops);
            self.slots[seq] = Some(Active {
                job,
                seq: seq as i32,
                prompt_done: 0,
                n_past: 0,
                next: None,
                generated: 0,
                ids: Vec::new(),
                acc,
                admitted: Instant::now(),
                prompt_time: None,
                first_token: None,
            });
        }
    }

    /// One decode: generating sequences first, then prompt chunks.
    fn step(&mut self) {
        let mut limit = BATCH_TOKENS;
        loop {
            let mut budget = limit;
            self.batch.clear();
            // (slot, batch index of its logits)
            let mut logits: Vec<(usize, i32)> = Vec::new();
            let mut prompt_chunks: Vec<(usize, usize)> = Vec::new();
            for (slot, active) in self.slots.iter().enumerate() {
                let Some(a) = active else { continue };
                if let Some(token) = a.next {
                    if budget == 0 {
                        break;
                    }
                    let index = self.batch.n_tokens();
                    if self.batch.add(token, a.n_past, &[a.seq], true).is_err() {
                        break;
                    }
                    logits.push((slot, index));
                    budget -= 1;
                }
            }
            for (slot, active) in self.slots.iter().enumerate() {
                let Some(a) = active else { continue };
                if a.next.is_some() || budget == 0 {
                    continue;
                }
                let remaining = &a.job.tokens[a.prompt_done..];
                let take = remaining.len().min(budget);
                for (i, token) in remaining[..take].iter().enumerate() {
                    let last = a.prompt_done + i + 1 == a.job.tokens.len();
                    let index = self.batch.n_tokens();
                    let pos = (a.prompt_done + i) as i32;
                    if self.batch.add(*token, pos, &[a.seq], last).is_err() {
                        break;
                    }
                    if last {
                        logits.push((slot, index));
                    }
                }
                prompt_chunks.push((slot, take));
                budget -= take;
            }
            if self.batch.n_tokens() == 0 {
                return;
            }
            match self.ctx.decode(&mut self.batch) {
                Ok(()) => {
                    for (slot, take) in prompt_chunks {
                        if let Some(a) = self.slots[slot].as_mut() {
                            a.prompt_done += take;
                            a.n_past += take as i32;
                        }
                    }
                    for (slot, index) in logits {
                        self.sample(slot, index);
                    }
                    return;
                }
                // No room for the whole batch: retry with half.
                Err(DecodeError::NoKvCacheSlot) if self.batch.n_tokens() > 1 => {
                    limit = (self.batch.n_tokens() as usize / 2).max(1);
                    tracing::debug!(model = %self.config.name, limit, "no KV slot for the batch; retrying smaller");
                    continue;
                }
                Err(e) => {
                    let message = format!("decode failed: {e}");
                    for slot in 0..self.slots.len() {
                        if let Some(a) = self.slots[slot].take() {
                            let _ = a.job.events.send(Event::Failed(message.clone()));
                            self.clear_seq(a.seq);
                        }
                    }
                    return;
                }
            }
        }
    }

    fn sample(&mut self, slot: usize, index: i32) {
        let vocab = self.model.vocab();
        let Some(a) = self.slots[slot].as_mut() else { return };
        if a.next.is_none() {
            a.prompt_time = Some(a.admitted.elapsed());
        } else {
            a.n_past += 1;
        }
        let token = match a.job.grammar.as_mut() {
            None => a.job.sampler.sample(&self.ctx, index),
            Some(grammar) => sample_constrained(&self.ctx, index, &mut a.job.sampler, grammar, vocab.eos()),
        };
        a.generated += 1;
        a.ids.push(token.0 as u32);
        a.first_token.get_or_insert_with(|| a.job.submitted.elapsed());
        let bytes = vocab.token_to_piece(token, true, None);
        if vocab.is_eog(token) {
            // The end-of-turn token is part of the raw response (clembench's
            // `response`); the adapter culls it from `response_text`.
            a.acc.push_final(&bytes);
            return self.finish(slot, FinishReason::Stop);
        }
        let piece = a.acc.push(&bytes);
        if !piece.is_empty() && a.job.events.send(Event::Piece(piece)).is_err() {
            return self.finish(slot, FinishReason::Cancelled);
        }
        if a.acc.stopped() {
            return self.finish(slot, FinishReason::Stop);
        }
        if a.generated >= a.job.max_tokens {
            return self.finish(slot, FinishReason::Length);
        }
        a.next = Some(token);
    }

    fn finish(&mut self, slot: usize, reason: FinishReason) {
        let Some(mut a) = self.slots[slot].take() else { return };
        self.clear_seq(a.seq);
        let rest = a.acc.finish();
        if reason != FinishReason::Cancelled && !rest.is_empty() {
            let _ = a.job.events.send(Event::Piece(rest));
        }
        let prompt_time = a.prompt_time.unwrap_or_else(|| a.admitted.elapsed());
        let total = a.admitted.elapsed();
        let _ = a.job.events.send(Event::Done(EngineOutput {
            text: a.acc.text().to_string(),
            token_ids: std::mem::take(&mut a.ids),
            prompt_tokens: a.job.tokens.len() as u32,
            completion_tokens: a.generated,
            finish_reason: reason,
            prompt_time,
            generation_time: total.saturating_sub(prompt_time),
            time_to_first_token: a.first_token,
        }));
    }

    fn clear_seq(&mut self, seq: i32) {
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
    }
}

/// Sample under a grammar the way llama.cpp's own server does: sample without
/// it, check only the chosen token against the grammar, and run the grammar
/// over the whole vocabulary (then sample again) only when that token is
/// refused. Same distribution as constraining first (an allowed token is kept
/// with its probability, a refused draw is redrawn from the allowed ones), at a
/// fraction of the cost: the full grammar pass over 49k tokens was a third of
/// a decoding step on a small model. Both samplers then accept the token.
fn sample_constrained(
    ctx: &LlamaContext<'_>,
    index: i32,
    chain: &mut LlamaSampler,
    grammar: &mut LlamaSampler,
    eos: LlamaToken,
) -> LlamaToken {
    let mut all = ctx.token_data_array_ith(index);
    all.apply_sampler(chain);
    let allowed = all.selected_token().filter(|&token| {
        let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 1.0)], false);
        one.apply_sampler(grammar);
        one.data.first().is_some_and(|d| d.logit().is_finite())
    });
    let token = allowed.unwrap_or_else(|| {
        let mut all = ctx.token_data_array_ith(index);
        all.apply_sampler(grammar);
        all.apply_sampler(chain);
        // With every token refused the chain has nothing to pick; end the turn.
        all.selected_token().unwrap_or(eos)
    });
    grammar.accept(token);
    chain.accept(token);
    token
}
