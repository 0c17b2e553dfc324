"""lmhost: run language models behind one registry and one API.

::

    import lmhost
    host = lmhost.Host()
    model = host.load("SmolLM2-135M-Instruct")
    g = model.generate("What is the capital of France?", max_tokens=32)
    print(g.response_text, g.usage.completion_tokens, g.tokens_per_second)

Every call returns a :class:`Generation`: ``prompt`` (exactly what the engine
was given), ``response`` (exactly what it returned) and ``response_text`` (the
answer alone), as clembench defines them, plus ``usage`` and ``timings``.
Calls release the GIL; Ctrl-C stops a generation. ``model.stream``,
``await model.agenerate`` and ``model.generate_batch`` stream, await and batch
the same calls; :class:`LLM` is a swarm_models-style ``BaseLLM``; the clemcore
backend is :mod:`lmhost.clemcore`.
"""

from __future__ import annotations

from lmhost import errors
from lmhost._lmhost import (
    Chat,
    Delta,
    Generation,
    Host,
    Model,
    Stream,
    Timings,
    Usage,
    __version__,
)
from lmhost.llm import LLM
from lmhost.errors import (
    AdapterError,
    AdapterTimeout,
    ContextLengthExceeded,
    EngineError,
    Error,
    InvalidRequest,
    MissingApiKey,
    ModelLoadError,
    ModelNotFound,
    ProviderError,
    RegistryError,
)

__all__ = [
    "Host",
    "Model",
    "Generation",
    "Usage",
    "Timings",
    "Stream",
    "Delta",
    "Chat",
    "LLM",
    "errors",
    *errors.__all__,
    "__version__",
]
