//! One request's adapter instance ([`AdapterSession`]) and its streaming
//! post-processing ([`AdapterStream`]).

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use super::sandbox::AdapterState;
use super::{bindings, wit, Adapter, AdapterError};

/// An instance with its store, for one call or one stream.
pub(super) struct Instance {
    pub(super) store: Store<AdapterState>,
    pub(super) bindings: bindings::Adapter,
}

/// One request's instance of an adapter. Every call is armed with its own
/// deadline; a call that traps or hits a limit drops the instance, and a later
/// call starts from a fresh one. An error value from the adapter keeps it.
pub struct AdapterSession {
    pub(super) adapter: Adapter,
    pub(super) inst: Option<Instance>,
}

impl AdapterSession {
    /// The instance, made now if there is none, armed for one call.
    fn instance(&mut self) -> Result<&mut Instance, AdapterError> {
        let inst = match self.inst.take() {
            Some(mut inst) => {
                self.adapter.arm(&mut inst.store);
                inst
            }
            None => self.adapter.instantiate()?,
        };
        Ok(self.inst.insert(inst))
    }

    /// A call's outcome: a trap drops the instance (after noting its memory peak).
    fn settle<T>(&mut self, result: wasmtime::Result<Result<T, wit::AdapterError>>) -> Result<T, AdapterError> {
        let inst = self.inst.as_ref().expect("a call has an instance");
        self.adapter.note_peak(&inst.store);
        match result {
            Ok(answer) => answer.map_err(|e| self.adapter.refused(e)),
            Err(e) => {
                let err = self.adapter.trap(&inst.store, e);
                self.inst = None;
                Err(err)
            }
        }
    }

    /// Messages and parameters → what the engine consumes.
    pub fn shape_request(
        &mut self,
        model: &wit::ModelInfo,
        messages: &[wit::Message],
        params: &wit::Params,
    ) -> Result<wit::Request, AdapterError> {
        let inst = self.instance()?;
        let result =
            inst.bindings
                .lmhost_adapter_model_adapter()
                .call_shape_request(&mut inst.store, model, messages, params);
        let request = self.settle(result)?;
        match &request {
            wit::Request::Prompt(p) => self.adapter.check_len(&p.text)?,
            wit::Request::Http(h) => self.adapter.check_len(&h.body)?,
        }
        Ok(request)
    }

    /// The engine's whole raw output → the answer.
    pub fn parse_response(&mut self, model: &wit::ModelInfo, raw: &str) -> Result<wit::Completion, AdapterError> {
        let inst = self.instance()?;
        let result = inst
            .bindings
            .lmhost_adapter_model_adapter()
            .call_parse_response(&mut inst.store, model, raw);
        let completion = self.settle(result)?;
        self.adapter.check_len(&completion.text)?;
        Ok(completion)
    }

    /// Start streaming post-processing for the response, in this instance.
    pub fn stream(mut self, model: &wit::ModelInfo) -> Result<AdapterStream, AdapterError> {
        let inst = self.instance()?;
        let result = inst
            .bindings
            .lmhost_adapter_model_adapter()
            .response_stream()
            .call_constructor(&mut inst.store, model);
        let resource = self.settle(result.map(Ok))?;
        let inst = self.inst.take().expect("a stream has an instance");
        Ok(AdapterStream {
            adapter: self.adapter,
            inst,
            resource,
            emitted: String::new(),
        })
    }
}

/// Streaming post-processing of one response. The host enforces the contract:
/// what was emitted is always a prefix of the final text.
pub struct AdapterStream {
    adapter: Adapter,
    inst: Instance,
    resource: ResourceAny,
    emitted: String,
}

impl AdapterStream {
    /// Feed raw engine text; returns answer text that is safe to show now.
    pub fn push(&mut self, chunk: &str) -> Result<String, AdapterError> {
        self.adapter.arm(&mut self.inst.store);
        let result = self
            .inst
            .bindings
            .lmhost_adapter_model_adapter()
            .response_stream()
            .call_push(&mut self.inst.store, self.resource, chunk)
            .map_err(|e| self.adapter.trap(&self.inst.store, e))?;
        let piece = result.map_err(|e| self.adapter.refused(e))?;
        self.adapter.check_len(&piece)?;
        self.emitted.push_str(&piece);
        self.adapter.check_len(&self.emitted)?;
        Ok(piece)
    }

    /// End of the raw text: the final completion, and what of its text was not yet emitted.
    pub fn finish(mut self) -> Result<(wit::Completion, String), AdapterError> {
        self.adapter.arm(&mut self.inst.store);
        let result = self
            .inst
            .bindings
            .lmhost_adapter_model_adapter()
            .response_stream()
            .call_finish(&mut self.inst.store, self.resource)
            .map_err(|e| self.adapter.trap(&self.inst.store, e));
        self.adapter.note_peak(&self.inst.store);
        let result = result?;
        let completion = result.map_err(|e| self.adapter.refused(e))?;
        self.adapter.check_len(&completion.text)?;
        let Some(rest) = completion.text.strip_prefix(self.emitted.as_str()) else {
            return Err(AdapterError::Contract {
                adapter: self.adapter.name.to_string(),
                message: format!(
                    "it streamed {:?} but its final text {:?} does not start with that",
                    truncate(&self.emitted),
                    truncate(&completion.text)
                ),
            });
        };
        let rest = rest.to_string();
        let _ = self.resource.resource_drop(&mut self.inst.store);
        Ok((completion, rest))
    }
}

/// The first 80 characters of `s`, for messages.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}
