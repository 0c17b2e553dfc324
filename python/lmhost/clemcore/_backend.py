"""The clemcore backend's implementation (imports clemcore); the public names
are re-exported by :mod:`lmhost.clemcore`, whose docstring describes them."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, List, Tuple

import lmhost
from lmhost.clemcore import BACKEND_NAME, MODEL_KEY, SPEC_KEY
from lmhost.llm import SAMPLING_PARAMS

try:
    import clemcore.backends as backends
    from clemcore.backends.utils import (
        ContextExceededError,
        augment_response_object,
        ensure_messages_format,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lmhost.clemcore needs clemcore: pip install 'clemcore==3.7.2' (or 'lmhost[clemcore]')"
    ) from error

__all__ = [
    "LmhostBackend",
    "LmhostModel",
    "get_host",
    "set_host",
    "lmhost_query",
    "ContextExceededError",
]

logger = logging.getLogger(__name__)

#: clemcore gen_args that lmhost's generate takes under the same name.
_PARAMS = SAMPLING_PARAMS

_lock = threading.Lock()
_host: lmhost.Host | None = None
_models: Dict[str, lmhost.Model] = {}


def get_host() -> lmhost.Host:
    """The process's :class:`lmhost.Host`, created on first use."""
    global _host
    with _lock:
        if _host is None:
            _host = lmhost.Host()
        return _host


def set_host(host: lmhost.Host | None) -> None:
    """Use ``host`` from now on (``None``: a default one on next use).
    Models loaded through the previous host are forgotten."""
    global _host
    if host is not None and not isinstance(host, lmhost.Host):
        raise TypeError(f"set_host takes an lmhost.Host or None, not {type(host).__name__}")
    with _lock:
        _host = host
        _models.clear()


def _entry_value(entry: dict, model_config: dict, key: str, name: str) -> Any:
    top, inner = entry.get(key), model_config.get(key)
    if top is not None and inner is not None and top != inner:
        raise ValueError(
            f"clemcore model entry {name!r}: '{key}' is given both at the top level ({top!r}) "
            f"and in model_config ({inner!r}); keep one"
        )
    return inner if inner is not None else top


def lmhost_query(model_spec: "backends.ModelSpec | dict") -> Tuple[str | dict, str]:
    """The lmhost query a clemcore model entry names, and which key named it
    (``"lmhost_model"``, ``"lmhost_spec"`` or ``"model_name"``).

    Raises ValueError, naming the entry and key, when the entry is malformed.
    """
    entry = model_spec.to_dict() if hasattr(model_spec, "to_dict") else dict(model_spec)
    name = entry.get("model_name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a clemcore model entry needs a 'model_name' string, got {entry!r}")
    model_config = entry.get("model_config", {})
    if model_config is None:
        model_config = {}
    if not isinstance(model_config, dict):
        raise ValueError(
            f"clemcore model entry {name!r}: 'model_config' must be an object, "
            f"not {type(model_config).__name__}"
        )
    model = _entry_value(entry, model_config, MODEL_KEY, name)
    spec = _entry_value(entry, model_config, SPEC_KEY, name)
    if model is not None and spec is not None:
        raise ValueError(
            f"clemcore model entry {name!r}: give either '{MODEL_KEY}' or '{SPEC_KEY}', not both"
        )
    if model is not None:
        if isinstance(model, str):
            if not model.strip():
                raise ValueError(f"clemcore model entry {name!r}: '{MODEL_KEY}' is an empty string")
            return model, MODEL_KEY
        if isinstance(model, dict):
            if model.get("backend") == BACKEND_NAME:
                raise ValueError(
                    f"clemcore model entry {name!r}: '{MODEL_KEY}' names backend "
                    f"{BACKEND_NAME!r}, which would point back at this backend; "
                    f"name an lmhost backend (llamacpp, huggingface_local, openai, ...)"
                )
            return dict(model), MODEL_KEY
        raise ValueError(
            f"clemcore model entry {name!r}: '{MODEL_KEY}' must be an lmhost model name (string) "
            f"or a query (object), not {type(model).__name__}"
        )
    if spec is not None:
        if not isinstance(spec, dict):
            raise ValueError(
                f"clemcore model entry {name!r}: '{SPEC_KEY}' must be an lmhost registry entry "
                f"(object), not {type(spec).__name__}"
            )
        missing = [k for k in ("model_name", "backend") if not spec.get(k)]
        if missing:
            raise ValueError(
                f"clemcore model entry {name!r}: '{SPEC_KEY}' lacks {' and '.join(repr(k) for k in missing)}"
            )
        if spec["backend"] == BACKEND_NAME:
            raise ValueError(
                f"clemcore model entry {name!r}: '{SPEC_KEY}' has backend {BACKEND_NAME!r}, "
                f"which would point back at this backend; give the lmhost backend "
                f"(llamacpp, huggingface_local, openai, ...)"
            )
        return dict(spec), SPEC_KEY
    return name, "model_name"


def _load(model_spec: "backends.ModelSpec") -> lmhost.Model:
    query, source = lmhost_query(model_spec)
    name = model_spec.model_name
    key = json.dumps(query, sort_keys=True)
    host = get_host()
    with _lock:
        cached = _models.get(key)
    if cached is not None:
        return cached
    try:
        model = host.load(query)
    except lmhost.Error as error:
        if hasattr(error, "add_note"):  # Python 3.11+
            error.add_note(f"while loading clemcore model entry {name!r} ({source}: {query!r}) with lmhost")
        raise
    with _lock:
        model = _models.setdefault(key, model)
    logger.info("clemcore entry %r runs lmhost model %r (backend %s, context %s)",
                name, model.name, model.backend, model.context_length)
    return model


class LmhostBackend(backends.Backend):
    """clemcore's factory for models lmhost runs (``"backend": "lmhost"``)."""

    def get_model_for(self, model_spec: "backends.ModelSpec") -> "LmhostModel":
        return LmhostModel(model_spec)


class LmhostModel(backends.BatchGenerativeModel):
    """A clemcore model whose generations lmhost computes."""

    def __init__(self, model_spec: "backends.ModelSpec", model: lmhost.Model | None = None):
        super().__init__(model_spec)
        self.lmhost_model: lmhost.Model = model if model is not None else _load(model_spec)
        #: The context length lmhost runs the model with (None: unknown, e.g. remote).
        self.context_size: int | None = self.lmhost_model.context_length
        self._warned: set = set()

    def _params(self) -> Dict[str, Any]:
        params = {}
        for key, value in self.gen_args.items():
            if key in _PARAMS:
                if value is not None:
                    params[key] = value
            elif key not in self._warned:
                self._warned.add(key)
                logger.warning("%s: generation argument %r is not an lmhost parameter; ignored", self.name, key)
        return params

    def _check(self, messages: List[Dict]) -> List[Dict]:
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{self.name}: messages must be a non-empty list of message dicts")
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise ValueError(f"{self.name}: messages[{i}] is a {type(message).__name__}, not a dict")
            if "image" in message:
                raise ValueError(
                    f"{self.name}: messages[{i}] carries an image; the lmhost backend takes text only"
                )
        return messages

    def _record(self, generation: "lmhost.Generation", params: Dict[str, Any]) -> Tuple[Any, Any, str]:
        if isinstance(generation.prompt, str):
            prompt = {
                "inputs": generation.prompt,
                "max_new_tokens": params.get("max_tokens"),
                "temperature": params.get("temperature"),
            }
            prompt.update({k: v for k, v in params.items() if k not in ("max_tokens", "temperature")})
        else:
            prompt = generation.prompt
        if isinstance(generation.response, str):
            response = {
                "response": generation.response,
                "finish_reason": generation.finish_reason,
                "usage": generation.usage.to_dict(),
            }
            if generation.reasoning:
                response["cot_content"] = generation.reasoning
        else:
            response = generation.response
        return prompt, response, generation.response_text

    def _context_exceeded(self, error: "lmhost.ContextLengthExceeded") -> ContextExceededError:
        prompt_tokens = getattr(error, "prompt_tokens", None) or 0
        max_tokens = getattr(error, "max_tokens", None) or 0
        context_size = getattr(error, "context_length", None) or self.context_size or 0
        tokens_used = prompt_tokens + max_tokens
        return ContextExceededError(
            f"Context token limit for {self.name} exceeded ({prompt_tokens} prompt tokens "
            f"+ {max_tokens} max_tokens):",
            tokens_used=tokens_used,
            tokens_left=context_size - tokens_used,
            context_size=context_size,
        )

    @augment_response_object
    @ensure_messages_format
    def generate_response(self, messages: List[Dict]) -> Tuple[Any, Any, str]:
        """One generation: clemcore's ``(prompt, response, response_text)``."""
        params = self._params()
        try:
            generation = self.lmhost_model.generate(self._check(messages), **params)
        except lmhost.ContextLengthExceeded as error:
            raise self._context_exceeded(error) from error
        return self._record(generation, params)

    @augment_response_object
    @ensure_messages_format
    def generate_batch_response(self, batch_messages: List[List[Dict]]) -> List[Tuple[Any, Any, str]]:
        """Generations for several conversations, decoded together by lmhost."""
        params = self._params()
        batch = [self._check(messages) for messages in batch_messages]
        try:
            generations = self.lmhost_model.generate_batch(batch, **params)
        except lmhost.ContextLengthExceeded as error:
            raise self._context_exceeded(error) from error
        return [self._record(generation, params) for generation in generations]
