"""Type stubs of lmhost's Rust core (``lmhost._lmhost``)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, Literal, TypedDict, TypeVar, overload

_T = TypeVar("_T")

__version__: str

class _Message(TypedDict, total=False):
    role: str
    content: str | list[dict[str, Any]] | None
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    name: str
    reasoning: str

Messages = str | Sequence[Mapping[str, Any]]
"""One user turn as a string, or message dicts (``role``, ``content``; tool
calls and results as lmhost or OpenAI writes them)."""

# Generation parameters, accepted as keywords by every generating method:
#   max_tokens: int            most tokens to generate (registry entry's, else 256)
#   temperature: float         0 is greedy (the default)
#   top_p, top_k, min_p        sampling
#   seed: int                  the same seed gives the same text
#   stop: str | list[str]      generation ends before the first one
#   repetition_penalty, frequency_penalty, presence_penalty
#   response_format: {"type": "json_object"} | {"type": "json_schema", "schema": {...}}
#                    (OpenAI's {"type": "json_schema", "json_schema": {"schema": ...}} too)
#   tools: [{"name", "description", "parameters"}] (or OpenAI's {"type": "function", "function": {...}})
#   tool_choice: "auto" | "none" | "required" | {"function": name}
#   parallel_tool_calls: bool
# Unknown keywords raise InvalidRequest naming them.

class Host:
    """Models behind one registry.

    ``registry``: registry files (clembench's format) searched before the
    built-in one; ``home``: lmhost's folder (default ``$LMHOST_HOME`` or
    ``~/.lmhost``); ``models_dir``: a folder searched first for weights.
    """

    def __init__(
        self,
        registry: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        models_dir: str | os.PathLike[str] | None = None,
    ) -> None: ...
    def load(self, query: str | Mapping[str, Any]) -> Model:
        """A registry name, or a dict unified with the entries (a full entry
        loads a model no registry names). Raises ModelNotFound, ModelLoadError."""
    def resolve(self, query: str | Mapping[str, Any]) -> dict[str, Any]:
        """The registry entry a query resolves to."""
    def models(self) -> list[str]:
        """The registry's model names, first match first."""

class Model:
    """A loaded model."""

    @property
    def name(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def context_length(self) -> int | None: ...
    @property
    def spec(self) -> dict[str, Any]: ...
    def generate(self, messages: Messages, **params: Any) -> Generation:
        """Generate an answer. Releases the GIL; Ctrl-C stops it."""
    def agenerate(self, messages: Messages, **params: Any) -> Awaitable[Generation]:
        """``generate`` for asyncio; cancelling the task stops the generation."""
    @overload
    def stream(self, messages: Messages, *, deltas: Literal[False] = False, **params: Any) -> Stream[str]: ...
    @overload
    def stream(self, messages: Messages, *, deltas: Literal[True], **params: Any) -> Stream[Delta]: ...
    @overload
    def generate_batch(
        self, requests: Iterable[Messages], *, return_exceptions: Literal[False] = False, **params: Any
    ) -> list[Generation]: ...
    @overload
    def generate_batch(
        self, requests: Iterable[Messages], *, return_exceptions: Literal[True], **params: Any
    ) -> list[Generation | BaseException]: ...
    @overload
    def agenerate_batch(
        self, requests: Iterable[Messages], *, return_exceptions: Literal[False] = False, **params: Any
    ) -> Awaitable[list[Generation]]: ...
    @overload
    def agenerate_batch(
        self, requests: Iterable[Messages], *, return_exceptions: Literal[True], **params: Any
    ) -> Awaitable[list[Generation | BaseException]]: ...
    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` to the model (no special tokens); None for remote models."""
    def chat(self, system: str | None = None, **params: Any) -> Chat:
        """A conversation that keeps its history."""

class Generation:
    """One call's result, as clembench defines it, plus usage and timings."""

    @property
    def model(self) -> str: ...
    @property
    def prompt(self) -> str | dict[str, Any]:
        """Exactly what the engine was given: prompt text, or an HTTP body."""
    @property
    def response(self) -> str | dict[str, Any]:
        """Exactly what the engine returned."""
    @property
    def response_text(self) -> str:
        """The answer alone, post-processed by the adapter."""
    @property
    def reasoning(self) -> str | None: ...
    @property
    def tool_calls(self) -> list[dict[str, str]]:
        """Dicts with ``id``, ``name`` and ``arguments`` (JSON text)."""
    @property
    def finish_reason(self) -> Literal["stop", "length", "tool_calls", "cancelled"]: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def timings(self) -> Timings: ...
    @property
    def tokens_per_second(self) -> float: ...
    def message(self) -> dict[str, Any]:
        """The assistant turn to append to the history."""
    def to_dict(self) -> dict[str, Any]: ...

class Usage:
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def total_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...
    def to_dict(self) -> dict[str, int]: ...

class Timings:
    @property
    def adapter_ms(self) -> float: ...
    @property
    def prompt_ms(self) -> float: ...
    @property
    def generation_ms(self) -> float: ...
    @property
    def time_to_first_token_ms(self) -> float | None: ...
    @property
    def total_ms(self) -> float: ...
    def to_dict(self) -> dict[str, float | None]: ...

class Stream(Iterator[_T], Generic[_T]):
    """A streamed answer. Leaving the loop early or ``close()`` stops it."""

    def __iter__(self) -> Stream[_T]: ...
    def __next__(self) -> _T: ...
    @property
    def generation(self) -> Generation | None:
        """The whole result, once the stream has ended."""
    def close(self) -> None: ...
    def __enter__(self) -> Stream[_T]: ...
    def __exit__(self, *exc: object) -> None: ...

class Delta:
    """A piece of a streamed answer."""

    @property
    def text(self) -> str: ...
    @property
    def reasoning(self) -> str: ...
    @property
    def tool_calls(self) -> list[dict[str, str]]: ...

class Chat:
    """A conversation that keeps its history."""

    def say(self, text: str, **params: Any) -> Generation: ...
    @property
    def system(self) -> str | None: ...
    @property
    def history(self) -> list[dict[str, Any]]: ...
    def clear(self) -> None: ...
