//! The async face of [`Model`]: generation on tokio's blocking pool, and
//! streams of text pieces.
//!
//! Engines are blocking code, so every async call runs the generation in
//! [`tokio::task::spawn_blocking`]; a task needs to own its model, so these
//! methods take `self: &Arc<Model>` (load with `Arc::new(host.load(..)?)`). They
//! must be called from within a tokio runtime. Dropping a stream stops its
//! generation at the next piece of text.
//!
//! Imports the model layer; must not import the server or the tools.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures::Stream;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::generation::{Generation, GenerationParams, Message};
use crate::model::Model;

/// One event of [`Model::stream_events`]: pieces of answer text, reasoning
/// and tool calls in the order the model wrote them, then the finished
/// [`Generation`] last.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Answer text, in order; the pieces concatenate to the generation's `response_text`.
    Text(String),
    /// Reasoning text; the pieces concatenate to the generation's `reasoning`.
    Reasoning(String),
    /// A whole tool call, as in the generation's `tool_calls` (same id).
    ToolCall(crate::ToolCall),
    /// The whole generation (usage, `finish_reason`, timings); always the last event.
    Done(Box<Generation>),
}

impl Model {
    /// [`Model::generate`] on tokio's blocking pool.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// use std::sync::Arc;
    /// use lmhost::{GenerationParams, Host, Message};
    /// let host = Host::new()?;
    /// let model = Arc::new(host.load(r#"{"model_name": "m", "backend": "mock", "reply": "Blue."}"#)?);
    /// let g = model.generate_async(vec![Message::user("Name a colour.")], GenerationParams::greedy(8)).await?;
    /// assert_eq!(g.response_text, "Blue.");
    /// # Ok(()) }
    /// ```
    pub async fn generate_async(
        self: &Arc<Self>,
        messages: Vec<Message>,
        params: GenerationParams,
    ) -> Result<Generation> {
        let model = Arc::clone(self);
        tokio::task::spawn_blocking(move || model.generate(&messages, &params))
            .await
            .map_err(|e| join_error(self.name(), e))?
    }

    /// The answer as a stream of text pieces; an error ends the stream as its
    /// last item. The pieces concatenate to what [`Model::generate`] answers.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// use std::sync::Arc;
    /// use futures::StreamExt;
    /// use lmhost::{GenerationParams, Host, Message};
    /// let host = Host::new()?;
    /// let model = Arc::new(host.load(r#"{"model_name": "m", "backend": "mock", "reply": "Once upon a time"}"#)?);
    /// let mut stream = model.stream(vec![Message::user("Tell me a story.")], GenerationParams::default());
    /// let mut text = String::new();
    /// while let Some(piece) = stream.next().await {
    ///     text.push_str(&piece?);
    /// }
    /// assert_eq!(text, "Once upon a time");
    /// # Ok(()) }
    /// ```
    pub fn stream(
        self: &Arc<Self>,
        messages: Vec<Message>,
        params: GenerationParams,
    ) -> impl Stream<Item = Result<String>> + Send + Unpin + 'static {
        use futures::StreamExt;
        self.stream_events(messages, params).filter_map(|event| {
            futures::future::ready(match event {
                Ok(StreamEvent::Text(piece)) => Some(Ok(piece)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
        })
    }

    /// Like [`Model::stream`], with the finished [`Generation`] as the last
    /// event ([`StreamEvent::Done`]), for callers that need usage and
    /// `finish_reason` too (the server does).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// use std::sync::Arc;
    /// use futures::StreamExt;
    /// use lmhost::{GenerationParams, Host, Message, StreamEvent};
    /// let host = Host::new()?;
    /// let model = Arc::new(host.load(r#"{"model_name": "m", "backend": "mock", "reply": "a b c"}"#)?);
    /// let events: Vec<_> = model.stream_events(vec![Message::user("Hi")], GenerationParams::default()).collect().await;
    /// assert_eq!(events.len(), 4);
    /// match events.last() {
    ///     Some(Ok(StreamEvent::Done(g))) => assert_eq!(g.usage.completion_tokens, 3),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream_events(
        self: &Arc<Self>,
        messages: Vec<Message>,
        params: GenerationParams,
    ) -> impl Stream<Item = Result<StreamEvent>> + Send + Unpin + 'static {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let model = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let result = model.generate_stream_deltas(&messages, &params, |delta| {
                let events = (!delta.reasoning.is_empty())
                    .then(|| StreamEvent::Reasoning(delta.reasoning.clone()))
                    .into_iter()
                    .chain((!delta.text.is_empty()).then(|| StreamEvent::Text(delta.text.clone())))
                    .chain(delta.tool_calls.iter().cloned().map(StreamEvent::ToolCall));
                events.into_iter().all(|e| tx.send(Ok(e)).is_ok())
            });
            let _ = tx.send(result.map(|g| StreamEvent::Done(Box::new(g))));
        });
        let name = self.name().to_string();
        let mut task = Some(task);
        let mut finished = false;
        futures::stream::poll_fn(move |cx| {
            if finished {
                return Poll::Ready(None);
            }
            match rx.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    finished = matches!(event, Ok(StreamEvent::Done(_)) | Err(_));
                    Poll::Ready(Some(event))
                }
                Poll::Pending => Poll::Pending,
                // The sender is gone without a last event: the task panicked.
                Poll::Ready(None) => {
                    let Some(handle) = task.as_mut() else {
                        return Poll::Ready(None);
                    };
                    let outcome = match Pin::new(handle).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => join_error(&name, e),
                        Poll::Ready(Ok(())) => join_error_message(&name, "it ended without a result"),
                    };
                    task = None;
                    finished = true;
                    Poll::Ready(Some(Err(outcome)))
                }
            }
        })
    }
}

fn join_error(model: &str, e: tokio::task::JoinError) -> Error {
    join_error_message(model, &e.to_string())
}

fn join_error_message(model: &str, why: &str) -> Error {
    crate::engines::EngineError::Inference {
        model: model.to_string(),
        message: format!("the generation task failed: {why}"),
    }
    .into()
}
