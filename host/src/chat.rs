//! [`Chat`]: a conversation with one model that keeps its own history.
//!
//! Each [`Chat::say`] sends the system prompt, every earlier turn and the new
//! user message; on success the user message and the answer (its
//! `response_text`, tool calls and reasoning) are appended to the history. An
//! answer that calls tools is continued with [`Chat::tool_results`]. A failed
//! turn leaves the history unchanged.
//!
//! Imports the model layer; must not import the server or the tools.

use std::ops::Deref;
use std::sync::Arc;

use crate::error::Result;
use crate::generation::{Generation, GenerationParams, Message};
use crate::model::Model;

/// A conversation with a model: an optional system prompt, the turns so far,
/// and the parameters every turn uses.
///
/// `M` is how the chat holds its model: `&Model` ([`Model::chat`]) or
/// `Arc<Model>` (`Chat::new(arc)`), which also offers [`Chat::say_async`].
///
/// ```
/// use lmhost::{Chat, Host};
/// let host = Host::new()?;
/// let model = host.load(r#"{"model_name": "echo", "backend": "mock", "reply": "[{prompt}]"}"#)?;
/// let mut chat = model.chat();
/// chat.system("Be brief.");
/// chat.say("Hi")?;
/// let second = chat.say("Again")?;
/// // The second prompt carries the first turn.
/// assert!(second.response_text.contains("<|user|>Hi\n"));
/// assert_eq!(chat.history().len(), 4);
/// chat.clear_history();
/// assert!(chat.history().is_empty());
/// # Ok::<(), lmhost::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chat<M: Deref<Target = Model>> {
    model: M,
    system: Option<String>,
    history: Vec<Message>,
    params: GenerationParams,
}

impl Model {
    /// A new [`Chat`] with this model, no system prompt and no history.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// let model = host.load("mock")?;
    /// let mut chat = model.chat();
    /// assert_eq!(chat.say("Hello")?.response_text, "mock reply");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn chat(&self) -> Chat<&Model> {
        Chat::new(self)
    }
}

impl<M: Deref<Target = Model>> Chat<M> {
    /// A new chat with `model` (a `&Model` or an `Arc<Model>`).
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// let model = std::sync::Arc::new(host.load("mock")?);
    /// let chat = lmhost::Chat::new(model.clone());
    /// assert_eq!(chat.model().name(), "mock");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn new(model: M) -> Self {
        Self {
            model,
            system: None,
            history: Vec::new(),
            params: GenerationParams::default(),
        }
    }

    /// The model.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load("mock")?;
    /// assert_eq!(model.chat().model().name(), "mock");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Set the system prompt, sent first in every later turn; the history stays.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load(r#"{"model_name": "echo", "backend": "mock", "reply": "{prompt}"}"#)?;
    /// let mut chat = model.chat();
    /// chat.system("Answer in French.");
    /// assert!(chat.say("Hi")?.response_text.starts_with("<|system|>Answer in French.\n"));
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn system(&mut self, text: impl Into<String>) -> &mut Self {
        self.system = Some(text.into());
        self
    }

    /// The system prompt, if any.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load("mock")?;
    /// let mut chat = model.chat();
    /// assert_eq!(chat.system("Be brief.").system_prompt(), Some("Be brief."));
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn system_prompt(&self) -> Option<&str> {
        self.system.as_deref()
    }

    /// The parameters every turn uses (unset ones fall back to the registry entry).
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load(r#"{"model_name": "m", "backend": "mock", "reply": "a b c d"}"#)?;
    /// let mut chat = model.chat();
    /// chat.params_mut().max_tokens = Some(2);
    /// assert_eq!(chat.say("Hi")?.response_text, "a b");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn params_mut(&mut self) -> &mut GenerationParams {
        &mut self.params
    }

    /// The turns so far (user and assistant messages; the system prompt is not among them).
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load("mock")?;
    /// let mut chat = model.chat();
    /// chat.say("Hello")?;
    /// assert_eq!(chat.history(), [lmhost::Message::user("Hello"), lmhost::Message::assistant("mock reply")]);
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn history(&self) -> &[Message] {
        &self.history
    }

    /// Forget the turns so far; the system prompt stays.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load("mock")?;
    /// let mut chat = model.chat();
    /// chat.say("Hello")?;
    /// chat.clear_history();
    /// assert!(chat.history().is_empty());
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn clear_history(&mut self) {
        self.history.clear();
    }

    /// The messages the next turn sends for `user_text`: system prompt, history, the new message.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load("mock")?;
    /// let mut chat = model.chat();
    /// chat.system("S");
    /// assert_eq!(chat.messages_for("Hi"), [lmhost::Message::system("S"), lmhost::Message::user("Hi")]);
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn messages_for(&self, user_text: &str) -> Vec<Message> {
        let mut messages = Vec::with_capacity(self.history.len() + 2);
        if let Some(system) = &self.system {
            messages.push(Message::system(system.clone()));
        }
        messages.extend(self.history.iter().cloned());
        messages.push(Message::user(user_text));
        messages
    }

    /// Say `text` and get the answer; the turn joins the history.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load("mock")?;
    /// let mut chat = model.chat();
    /// assert_eq!(chat.say("Hello")?.response_text, "mock reply");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn say(&mut self, text: &str) -> Result<Generation> {
        let generation = self.model.generate(&self.messages_for(text), &self.params)?;
        self.record(text, &generation);
        Ok(generation)
    }

    /// Say `text`, handing the answer to `on_text` piece by piece as it is
    /// generated; the turn joins the history.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// # let model = host.load(r#"{"model_name": "m", "backend": "mock", "reply": "Once upon a time"}"#)?;
    /// let mut chat = model.chat();
    /// let mut shown = String::new();
    /// let g = chat.say_stream("Tell me a story.", |piece| shown.push_str(piece))?;
    /// assert_eq!(shown, g.response_text);
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn say_stream(&mut self, text: &str, on_text: impl FnMut(&str)) -> Result<Generation> {
        let generation = self
            .model
            .generate_stream(&self.messages_for(text), &self.params, on_text)?;
        self.record(text, &generation);
        Ok(generation)
    }

    /// Answer the tool calls of the last turn: `results` pairs a call id with
    /// what the tool returned. The model answers (or calls tools again); the
    /// results and the answer join the history.
    ///
    /// ```
    /// use lmhost::{GenerationParams, Host, Message, Tool};
    /// let host = Host::new()?;
    /// let call = r#"<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>"#;
    /// let entry = serde_json::json!({"model_name": "m", "backend": "mock", "replies": [call, "It is 5."]});
    /// let model = host.load(entry.to_string().as_str())?;
    /// let mut chat = model.chat();
    /// *chat.params_mut() = GenerationParams {
    ///     tools: vec![Tool::new("add", "Adds two numbers.", serde_json::json!({"type": "object"}))],
    ///     ..GenerationParams::default()
    /// };
    /// let asked = chat.say("What is 2 + 3?")?;
    /// assert_eq!(asked.finish_reason, "tool_calls");
    /// let call = &asked.tool_calls[0];
    /// assert_eq!((call.name.as_str(), call.arguments.as_str()), ("add", r#"{"a":2,"b":3}"#));
    /// let answer = chat.tool_results(&[(call.id.as_str(), "5")])?;
    /// assert_eq!(answer.response_text, "It is 5.");
    /// assert_eq!(chat.history()[2], Message::tool_result(call.id.clone(), "add", "5"));
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn tool_results(&mut self, results: &[(&str, &str)]) -> Result<Generation> {
        let calls = self.history.last().map(|m| m.tool_calls.as_slice()).unwrap_or_default();
        let answers = results
            .iter()
            .map(|(id, content)| match calls.iter().find(|c| c.id == *id) {
                Some(call) => Ok(Message::tool_result(*id, call.name.clone(), *content)),
                None => Err(crate::Error::InvalidRequest {
                    model: self.model.name().into(),
                    message: format!("the last turn made no tool call with the id `{id}`"),
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut messages = self.messages_for("");
        messages.pop();
        messages.extend(answers.iter().cloned());
        let generation = self.model.generate(&messages, &self.params)?;
        self.history.extend(answers);
        self.history.push(Message::from_generation(&generation));
        Ok(generation)
    }

    fn record(&mut self, text: &str, generation: &Generation) {
        self.history.push(Message::user(text));
        self.history.push(Message::from_generation(generation));
    }
}

impl Chat<Arc<Model>> {
    /// [`Chat::say`] on tokio's blocking pool (see [`Model::generate_async`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// let host = lmhost::Host::new()?;
    /// let model = std::sync::Arc::new(host.load("mock")?);
    /// let mut chat = lmhost::Chat::new(model);
    /// assert_eq!(chat.say_async("Hello").await?.response_text, "mock reply");
    /// assert_eq!(chat.history().len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn say_async(&mut self, text: &str) -> Result<Generation> {
        let generation = self
            .model
            .generate_async(self.messages_for(text), self.params.clone())
            .await?;
        self.record(text, &generation);
        Ok(generation)
    }
}
