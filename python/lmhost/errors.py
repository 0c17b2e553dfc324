"""lmhost's exceptions. Every error lmhost raises is an :class:`Error`.

::

    Error
    ├── RegistryError            a registry file or entry is wrong
    │   └── ModelNotFound        no entry matches the query (also a LookupError)
    ├── AdapterError             the model's wasm adapter failed or was stopped
    │   └── AdapterTimeout       it ran past its deadline
    ├── EngineError              the engine (llama.cpp, candle, a remote API) failed
    │   ├── ContextLengthExceeded  prompt + max_tokens do not fit the context
    │   ├── ModelLoadError       the weights are missing or cannot be loaded
    │   ├── MissingApiKey        a remote backend has no key
    │   └── ProviderError        a remote API answered with an error (``status``)
    └── InvalidRequest           bad messages or parameters (also a ValueError)

The message always names the model, file, key or value at fault.
"""

from __future__ import annotations

__all__ = [
    "Error",
    "RegistryError",
    "ModelNotFound",
    "AdapterError",
    "AdapterTimeout",
    "EngineError",
    "ContextLengthExceeded",
    "ModelLoadError",
    "MissingApiKey",
    "ProviderError",
    "InvalidRequest",
]


class Error(Exception):
    """Any lmhost error."""

    #: The model's registry name, when the error concerns one model.
    model: str | None = None


class RegistryError(Error):
    """A registry file, entry or query is wrong (the message names it)."""


class ModelNotFound(RegistryError, LookupError):
    """No registry entry matches the query; the message suggests close names."""


class AdapterError(Error):
    """The model's adapter (a sandboxed wasm component) failed, broke its
    contract, or ran past a limit."""


class AdapterTimeout(AdapterError):
    """The adapter ran past its deadline and was stopped."""


class EngineError(Error):
    """The engine failed: llama.cpp, candle, or a remote API."""


class ContextLengthExceeded(EngineError):
    """The prompt plus ``max_tokens`` do not fit the model's context.

    Attributes: ``prompt_tokens``, ``max_tokens``, ``context_length``, ``model``.
    """

    prompt_tokens: int = 0
    max_tokens: int = 0
    context_length: int = 0


class ModelLoadError(EngineError):
    """The weights file is missing, cannot be fetched, or cannot be loaded."""


class MissingApiKey(EngineError):
    """A remote backend has no API key (set the variable or key.json entry the
    message names)."""


class ProviderError(EngineError):
    """A remote API answered with an error. ``status`` is its HTTP status."""

    status: int = 0


class InvalidRequest(Error, ValueError):
    """Bad messages or generation parameters for this model."""
