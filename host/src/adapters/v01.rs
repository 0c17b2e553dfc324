//! Contract versions side by side: an adapter is linked as the newest version
//! its component implements ([`Pre`]), and every call goes through [`Bindings`],
//! which speaks the current contract (`wit`, 0.2) to the rest of the host. A 0.1
//! adapter's calls are converted: what 0.1 cannot carry (tools, tool calls,
//! tool results) is refused by the host before the adapter is called, never
//! dropped; what 0.1 returns gets no reasoning and no tool calls. Its `host`
//! imports forward to the current ones.

use wasmtime::component::{InstancePre, ResourceAny};
use wasmtime::Store;

use super::sandbox::AdapterState;
use super::{bindings, bindings_v01, wit};

use bindings_v01::exports::lmhost::adapter::model_adapter as old;

/// A compiled adapter, linked as the contract version it implements.
#[derive(Clone)]
pub(super) enum Pre {
    V02(bindings::AdapterPre<AdapterState>),
    V01(bindings_v01::AdapterPre<AdapterState>),
}

/// One instance's exports.
pub(super) enum Bindings {
    V02(bindings::Adapter),
    V01(bindings_v01::Adapter),
}

type Call<T> = wasmtime::Result<Result<T, wit::AdapterError>>;

impl Pre {
    /// Link `instance_pre` as the newest contract version it implements; the
    /// error says why it implements none.
    pub(super) fn new(instance_pre: InstancePre<AdapterState>) -> Result<Self, String> {
        match bindings::AdapterPre::new(instance_pre.clone()) {
            Ok(pre) => Ok(Pre::V02(pre)),
            Err(newest) => bindings_v01::AdapterPre::new(instance_pre)
                .map(Pre::V01)
                .map_err(|_| format!("{newest:#}")),
        }
    }

    /// `0.2.0`, `0.1.0`.
    pub(super) fn version(&self) -> &'static str {
        match self {
            Pre::V02(_) => "0.2.0",
            Pre::V01(_) => "0.1.0",
        }
    }

    pub(super) fn instance_pre(&self) -> &InstancePre<AdapterState> {
        match self {
            Pre::V02(pre) => pre.instance_pre(),
            Pre::V01(pre) => pre.instance_pre(),
        }
    }

    pub(super) fn instantiate(&self, store: &mut Store<AdapterState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Pre::V02(pre) => Bindings::V02(pre.instantiate(store)?),
            Pre::V01(pre) => Bindings::V01(pre.instantiate(store)?),
        })
    }
}

impl Bindings {
    pub(super) fn shape_request(
        &self,
        store: &mut Store<AdapterState>,
        model: &wit::ModelInfo,
        messages: &[wit::Message],
        params: &wit::Params,
    ) -> Call<wit::Request> {
        match self {
            Bindings::V02(b) => b
                .lmhost_adapter_model_adapter()
                .call_shape_request(store, model, messages, params),
            Bindings::V01(b) => {
                if let Some(refusal) = needs_v02(messages, params) {
                    return Ok(Err(refusal));
                }
                let messages: Vec<old::Message> = messages.iter().map(message).collect();
                let result = b.lmhost_adapter_model_adapter().call_shape_request(
                    store,
                    &model_info(model),
                    &messages,
                    &self::params(params),
                )?;
                Ok(result.map(request).map_err(error))
            }
        }
    }

    pub(super) fn parse_response(
        &self,
        store: &mut Store<AdapterState>,
        model: &wit::ModelInfo,
        params: &wit::Params,
        request: &wit::Request,
        raw: &str,
    ) -> Call<wit::Completion> {
        match self {
            Bindings::V02(b) => b
                .lmhost_adapter_model_adapter()
                .call_parse_response(store, model, params, request, raw),
            Bindings::V01(b) => {
                let result = b
                    .lmhost_adapter_model_adapter()
                    .call_parse_response(store, &model_info(model), raw)?;
                Ok(result.map(completion).map_err(error))
            }
        }
    }

    pub(super) fn stream_new(
        &self,
        store: &mut Store<AdapterState>,
        model: &wit::ModelInfo,
        params: &wit::Params,
        request: &wit::Request,
    ) -> wasmtime::Result<ResourceAny> {
        match self {
            Bindings::V02(b) => b
                .lmhost_adapter_model_adapter()
                .response_stream()
                .call_constructor(store, model, params, request),
            Bindings::V01(b) => b
                .lmhost_adapter_model_adapter()
                .response_stream()
                .call_constructor(store, &model_info(model)),
        }
    }

    pub(super) fn stream_push(
        &self,
        store: &mut Store<AdapterState>,
        stream: ResourceAny,
        chunk: &str,
    ) -> Call<wit::Delta> {
        match self {
            Bindings::V02(b) => b
                .lmhost_adapter_model_adapter()
                .response_stream()
                .call_push(store, stream, chunk),
            Bindings::V01(b) => {
                let result = b
                    .lmhost_adapter_model_adapter()
                    .response_stream()
                    .call_push(store, stream, chunk)?;
                Ok(result
                    .map(|text| wit::Delta {
                        text,
                        ..wit::Delta::empty()
                    })
                    .map_err(error))
            }
        }
    }

    pub(super) fn stream_finish(&self, store: &mut Store<AdapterState>, stream: ResourceAny) -> Call<wit::Completion> {
        match self {
            Bindings::V02(b) => b
                .lmhost_adapter_model_adapter()
                .response_stream()
                .call_finish(store, stream),
            Bindings::V01(b) => {
                let result = b
                    .lmhost_adapter_model_adapter()
                    .response_stream()
                    .call_finish(store, stream)?;
                Ok(result.map(completion).map_err(error))
            }
        }
    }
}

/// Why a request cannot go to a 0.1 adapter, if it cannot.
fn needs_v02(messages: &[wit::Message], params: &wit::Params) -> Option<wit::AdapterError> {
    let what = if params.uses_tools() {
        "tools"
    } else if messages.iter().any(|m| !m.tool_calls.is_empty()) {
        "an assistant message with tool calls"
    } else if messages.iter().any(|m| m.tool_call_id.is_some()) {
        "a tool result"
    } else {
        return None;
    };
    Some(wit::AdapterError::Unsupported(format!(
        "the request has {what}, and this adapter implements lmhost:adapter@0.1.0, which has no tool calling \
         (rebuild it against lmhost:adapter@0.2.0)"
    )))
}

fn message(m: &wit::Message) -> old::Message {
    old::Message {
        role: m.role.clone(),
        content: m.content.clone(),
    }
}

fn params(p: &wit::Params) -> old::Params {
    old::Params {
        max_tokens: p.max_tokens,
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: p.top_k,
        min_p: p.min_p,
        seed: p.seed,
        stop: p.stop.clone(),
        repetition_penalty: p.repetition_penalty,
        frequency_penalty: p.frequency_penalty,
        presence_penalty: p.presence_penalty,
        stream: p.stream,
    }
}

fn model_info(m: &wit::ModelInfo) -> old::ModelInfo {
    old::ModelInfo {
        name: m.name.clone(),
        backend: m.backend.clone(),
        spec_json: m.spec_json.clone(),
        builtin_template: m.builtin_template.clone(),
        bos_token: m.bos_token.clone(),
        eos_token: m.eos_token.clone(),
        add_bos: m.add_bos,
        context_length: m.context_length,
    }
}

fn request(r: old::Request) -> wit::Request {
    match r {
        old::Request::Prompt(p) => wit::Request::Prompt(wit::Prompt {
            text: p.text,
            stop: p.stop,
            add_bos: p.add_bos,
            constraint: None,
        }),
        old::Request::Http(h) => wit::Request::Http(wit::HttpRequest {
            method: h.method,
            path: h.path,
            headers: h.headers,
            body: h.body,
        }),
    }
}

fn completion(c: old::Completion) -> wit::Completion {
    wit::Completion {
        prompt_tokens: c.prompt_tokens,
        completion_tokens: c.completion_tokens,
        finish_reason: c.finish_reason,
        ..wit::Completion::text(c.text)
    }
}

fn error(e: old::AdapterError) -> wit::AdapterError {
    match e {
        old::AdapterError::InvalidInput(m) => wit::AdapterError::InvalidInput(m),
        old::AdapterError::Unsupported(m) => wit::AdapterError::Unsupported(m),
        old::AdapterError::Upstream(m) => wit::AdapterError::Upstream(m),
    }
}

impl bindings_v01::lmhost::adapter::types::Host for AdapterState {}

/// 0.1's imports are 0.2's.
impl bindings_v01::lmhost::adapter::host::Host for AdapterState {
    fn render_template(&mut self, template: String, context_json: String) -> Result<String, String> {
        bindings::lmhost::adapter::host::Host::render_template(self, template, context_json)
    }

    fn log(&mut self, level: bindings_v01::lmhost::adapter::host::LogLevel, message: String) {
        use bindings::lmhost::adapter::host::LogLevel as New;
        use bindings_v01::lmhost::adapter::host::LogLevel as Old;
        let level = match level {
            Old::Trace => New::Trace,
            Old::Debug => New::Debug,
            Old::Info => New::Info,
            Old::Warn => New::Warn,
            Old::Error => New::Error,
        };
        bindings::lmhost::adapter::host::Host::log(self, level, message)
    }
}
