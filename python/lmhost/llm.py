"""A swarm_models-style ``BaseLLM`` over an lmhost model.

::

    import lmhost
    llm = lmhost.LLM("SmolLM2-135M-Instruct", system_prompt="Be brief.", temperature=0.0, max_tokens=64)
    llm.run("Name a colour.")                     # -> str
    llm("Name a colour.")                         # the same
    llm.batch_run(["Name a colour.", "Name a fruit."])   # one batched call
    await llm.arun("Name a colour.")
    llm.chat("And another one?", history="Name a colour. | Red.")
    llm.last_generation.usage.completion_tokens, llm._tokens_per_second(), llm.get_generation_time()

:class:`LLM` has the interface of swarm_models' ``BaseLLM`` (constructor
parameters, ``run``, ``__call__``, ``arun``, ``batch_run``, ``abatch_run``,
``chat``, ``generate_summary``, the ``set_*`` methods and the timing
bookkeeping) without needing swarm_models, which ``import lmhost`` never
imports (it takes seconds and pulls in dozens of packages).

Being a real ``swarm_models.BaseLLM``: ``LLM(...)`` returns an instance of
:class:`SwarmLLM` -- a subclass of both :class:`LLM` and
``swarm_models.BaseLLM`` -- whenever swarm_models has already been imported in
the process, so ``isinstance(llm, swarm_models.BaseLLM)`` holds for code that
has imported swarm_models before building the LLM. ``BaseLLM`` is a plain class
(not an ABC), so a virtual subclass via ``register`` is not possible.
``lmhost.llm.SwarmLLM`` names that subclass; looking it up imports swarm_models
(``ImportError`` where it is not installed), so ``SwarmLLM(...)`` is always a
``BaseLLM`` whatever the import order.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import lmhost

__all__ = ["LLM"]

#: Sampling parameters (the clemcore backend passes these through from a
#: run's generation arguments too).
SAMPLING_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
)
#: Generation keywords that lmhost's ``Model.generate`` accepts; ``run`` and
#: the other calls pass these through per call.
GENERATION_PARAMS = SAMPLING_PARAMS + (
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)

# Attributes saved by save_checkpoint and restored by load_checkpoint.
_SETTINGS = (
    "system_prompt",
    "max_tokens",
    "max_length",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "stop",
    "stop_token",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "do_sample",
    "num_beams",
    "beam_width",
    "num_return_sequences",
    "length_penalty",
    "early_stopping",
    "role",
    "device",
    "model_id",
    "pad_token_id",
    "eos_token_id",
    "bos_token_id",
    "stop_token_id",
    "creative_mode",
)

_logger = logging.getLogger("lmhost.llm")

_default_host_lock = threading.Lock()
_default_host: lmhost.Host | None = None


def _shared_host() -> lmhost.Host:
    """The Host that LLMs built without ``host=`` share (created on first use)."""
    global _default_host
    with _default_host_lock:
        if _default_host is None:
            import lmhost

            _default_host = lmhost.Host()
        return _default_host


class LLM:
    """An lmhost model with swarm_models' ``BaseLLM`` interface.

    Args:
        model: a registry name (``"SmolLM2-135M-Instruct"``), a dict query or a
            full registry entry (loaded with ``host.load``), or an already
            loaded ``lmhost.Model``.
        host: the ``lmhost.Host`` that loads ``model`` by name or query;
            default: one Host shared by all LLMs of the process, made on first
            use with ``lmhost.Host()``.
        system_prompt: sent as the system turn before every task.
        max_tokens: most tokens to generate (default: the registry entry's).
        temperature, top_p, top_k, min_p, seed: sampling; lmhost's default
            temperature is 0 (greedy).
        stop: a string or list of strings; generation ends before the first.
        stop_token: ``BaseLLM``'s single stop string, added to ``stop``.
        frequency_penalty, presence_penalty, repetition_penalty: penalties.
        max_length: ``BaseLLM``'s "maximum length of generated sequences":
            used as ``max_tokens`` when ``max_tokens`` is not set.
        do_sample: ``False`` forces greedy decoding (temperature 0); ``True``
            with no temperature samples at temperature 1.
        num_beams, beam_width, num_return_sequences: accepted for the
            interface; lmhost has no beam search and returns one sequence, so
            a value above 1 raises ``ValueError`` when generating.
        model_name: ``BaseLLM``'s way to name the model; the same as ``model``
            (give one of them). Afterwards ``model_name`` is the loaded
            model's registry name.
        model_id, role, device, length_penalty, early_stopping, pad_token_id,
        eos_token_id, bos_token_id, stop_token_id: kept as attributes for the
            interface; they do not change generation (the registry entry
            decides the device and the special tokens; length penalty and
            early stopping only concern beam search).
        repition_penalty, freq_penalty: ``BaseLLM``'s spellings of
            ``repetition_penalty`` and ``frequency_penalty``.

    Every call records ``last_generation`` (the ``lmhost.Generation``; the
    last one of a batch), ``last_generations`` (all of the last call),
    ``start_time`` and ``end_time`` (``time.time()`` around the call), from
    which ``get_generation_time()`` and ``_tokens_per_second()`` answer.
    With concurrent calls these describe the call that finished last.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> LLM:
        # Plain ``LLM(...)`` becomes a swarm_models BaseLLM when swarm_models
        # is already loaded; subclasses keep the base classes they chose.
        if cls is LLM:
            base = _loaded_base_llm()
            if base is not None:
                cls = _swarm_class(base)
        return super().__new__(cls)

    def __init__(
        self,
        model: str | Mapping[str, Any] | lmhost.Model | None = None,
        host: lmhost.Host | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        repetition_penalty: float | None = None,
        stop_token: str | None = None,
        max_length: int | None = None,
        do_sample: bool | None = None,
        num_beams: int | None = None,
        beam_width: int | None = None,
        num_return_sequences: int | None = None,
        model_name: str | None = None,
        model_id: str | None = None,
        role: str | None = None,
        device: str | None = None,
        length_penalty: float | None = None,
        early_stopping: bool | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        bos_token_id: int | None = None,
        stop_token_id: int | None = None,
        repition_penalty: float | None = None,
        freq_penalty: float | None = None,
    ) -> None:
        # BaseLLM.__init__ (when it is a base) sets its attributes to None;
        # ours are set after it.
        super().__init__()
        if model is None:
            model = model_name
        elif model_name is not None and model_name != model:
            raise TypeError("give the model as `model` or as `model_name`, not both")
        if model is None:
            raise TypeError("LLM needs a model: a registry name, a dict query or an lmhost.Model")
        self.host = host
        self.model = self._load(model)
        self.model_name: str = self.model.name
        self.model_id = model_id

        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_length = max_length
        self.top_p = top_p
        self.top_k = top_k
        self.min_p = min_p
        self.stop = stop
        self.stop_token = stop_token
        self.seed = seed
        self.frequency_penalty = _one_of("frequency_penalty", frequency_penalty, "freq_penalty", freq_penalty)
        self.presence_penalty = presence_penalty
        self.repetition_penalty = _one_of(
            "repetition_penalty", repetition_penalty, "repition_penalty", repition_penalty
        )
        self.do_sample = do_sample
        self.num_beams = num_beams
        self.beam_width = beam_width
        self.num_return_sequences = num_return_sequences
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.role = role
        self.device = device
        self.pad_token_id = pad_token_id
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id
        self.stop_token_id = stop_token_id
        self.creative_mode = False

        self.history: list[Any] = []
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.last_generation: lmhost.Generation | None = None
        self.last_generations: list[lmhost.Generation] = []
        self.log_file: str | None = None

    # -- the model ---------------------------------------------------------

    def _load(self, model: Any) -> lmhost.Model:
        if isinstance(model, (str, Mapping)):
            host = self.host if self.host is not None else _shared_host()
            return host.load(model)
        if hasattr(model, "generate") and hasattr(model, "generate_batch"):
            return model
        raise TypeError(
            f"model must be a registry name, a dict query or an lmhost.Model, not {type(model).__name__}"
        )

    @property
    def repition_penalty(self) -> float | None:
        """``BaseLLM``'s spelling of :attr:`repetition_penalty`."""
        return self.repetition_penalty

    @repition_penalty.setter
    def repition_penalty(self, value: float | None) -> None:
        self.repetition_penalty = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r})"

    # -- requests ----------------------------------------------------------

    def _messages(self, task: Any, history: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
        """The conversation for ``task`` (a string, or message dicts) after
        ``history`` (message dicts), with the system prompt first."""
        if task is None:
            raise ValueError("task is None: give the text to answer")
        if isinstance(task, str):
            turns = [*map(dict, history), {"role": "user", "content": task}]
        elif isinstance(task, Sequence) and not isinstance(task, (bytes, bytearray)):
            turns = [*map(dict, history), *map(dict, task)]
        else:
            raise TypeError(f"task must be a string or a list of message dicts, not {type(task).__name__}")
        if self.system_prompt is not None and not (turns and turns[0].get("role") == "system"):
            turns.insert(0, {"role": "system", "content": self.system_prompt})
        return turns

    def generation_params(self, **overrides: Any) -> dict[str, Any]:
        """The keywords for ``Model.generate``: this LLM's settings, then
        ``overrides`` (lmhost generation parameters; ``None`` keeps the
        setting). Raises ``ValueError`` for settings lmhost cannot honour."""
        for name in ("num_beams", "beam_width", "num_return_sequences"):
            value = getattr(self, name)
            if value is not None and value > 1:
                raise ValueError(f"{name}={value}: lmhost has no beam search and returns one sequence per task")
        stops: list[str] = []
        if isinstance(self.stop, str):
            stops.append(self.stop)
        elif self.stop is not None:
            stops.extend(self.stop)
        if self.stop_token is not None and self.stop_token not in stops:
            stops.append(self.stop_token)
        temperature = self.temperature
        if self.do_sample is False:
            temperature = 0.0
        elif self.do_sample and temperature is None:
            temperature = 1.0
        params: dict[str, Any] = {
            "max_tokens": self.max_tokens if self.max_tokens is not None else self.max_length,
            "temperature": temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "seed": self.seed,
            "stop": stops or None,
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def _record(self, generations: Sequence[lmhost.Generation], start: float, end: float) -> None:
        self.start_time, self.end_time = start, end
        self.last_generations = list(generations)
        if generations:
            self.last_generation = generations[-1]
        if self.log_file is not None:
            for g in generations:
                self.log_event(
                    f"{g.model}: {g.usage.prompt_tokens} prompt + {g.usage.completion_tokens} completion tokens, "
                    f"{g.tokens_per_second:.1f} tokens/s, finish_reason={g.finish_reason}"
                )

    @staticmethod
    def _no_positional(method: str, args: tuple[Any, ...]) -> None:
        if args:
            raise TypeError(f"LLM.{method} takes generation parameters as keywords, got positional {args!r}")

    # -- BaseLLM's calls ---------------------------------------------------

    def run(self, task: str | Sequence[Mapping[str, Any]] | None = None, *args: Any, **kwargs: Any) -> str:
        """Answer ``task`` and return the answer's text (``response_text``).

        ``task`` is the user's turn (or a list of message dicts, the whole
        conversation); keywords are lmhost generation parameters for this call
        only (``max_tokens=8``, ``temperature=0.7``, ``tools=[...]``, ...).
        The whole ``lmhost.Generation`` is then ``self.last_generation``.
        """
        self._no_positional("run", args)
        messages = self._messages(task)
        params = self.generation_params(**kwargs)
        start = time.time()
        g = self.model.generate(messages, **params)
        self._record([g], start, time.time())
        return g.response_text

    def __call__(self, task: str | Sequence[Mapping[str, Any]] | None = None, *args: Any, **kwargs: Any) -> str:
        """The same as :meth:`run`."""
        return self.run(task, *args, **kwargs)

    async def arun(self, task: str | Sequence[Mapping[str, Any]] | None = None, *args: Any, **kwargs: Any) -> str:
        """:meth:`run` for asyncio (``Model.agenerate``; the event loop keeps
        running, and cancelling the task stops the generation)."""
        self._no_positional("arun", args)
        messages = self._messages(task)
        params = self.generation_params(**kwargs)
        start = time.time()
        g = await self.model.agenerate(messages, **params)
        self._record([g], start, time.time())
        return g.response_text

    def batch_run(self, tasks: Sequence[str | Sequence[Mapping[str, Any]]], *args: Any, **kwargs: Any) -> list[str]:
        """Answer several tasks in one ``Model.generate_batch`` call (decoded
        together); answers in the order of ``tasks``. Keywords as in
        :meth:`run`, for every task. A failing task raises its error."""
        self._no_positional("batch_run", args)
        requests = [self._messages(task) for task in tasks]
        if not requests:
            return []
        params = self.generation_params(**kwargs)
        start = time.time()
        generations = self.model.generate_batch(requests, **params)
        self._record(generations, start, time.time())
        return [g.response_text for g in generations]

    async def abatch_run(
        self, tasks: Sequence[str | Sequence[Mapping[str, Any]]], *args: Any, **kwargs: Any
    ) -> list[str]:
        """:meth:`batch_run` for asyncio (``Model.agenerate_batch``: decoded
        together, the loop keeps running; cancelling the task stops them)."""
        self._no_positional("abatch_run", args)
        requests = [self._messages(task) for task in tasks]
        if not requests:
            return []
        params = self.generation_params(**kwargs)
        start = time.time()
        generations = await self.model.agenerate_batch(requests, **params)
        self._record(generations, start, time.time())
        return [g.response_text for g in generations]

    def chat(
        self,
        task: str,
        history: str | Sequence[Mapping[str, Any]] | None = "",
        **kwargs: Any,
    ) -> str:
        """Answer ``task`` after an earlier conversation ``history``.

        ``history`` as ``BaseLLM.chat`` takes it, a string: the earlier
        conversation as text, sent in one user turn after the task as
        ``"<task> | <history>"`` (as ``BaseLLM.chat`` does); an empty string
        sends the task alone. Or a list of message dicts (``{"role": "user" |
        "assistant", "content": ...}``): sent as the earlier turns, then the
        task as the next user turn. ``self.history`` is not read or changed.
        """
        if history is None or (isinstance(history, str) and history == ""):
            return self.run(task, **kwargs)
        if isinstance(history, str):
            return self.run(f"{task} | {history}", **kwargs)
        if not isinstance(history, Sequence) or not all(isinstance(m, Mapping) for m in history):
            raise TypeError("history must be a string or a list of message dicts")
        messages = self._messages(task, history)
        params = self.generation_params(**kwargs)
        start = time.time()
        g = self.model.generate(messages, **params)
        self._record([g], start, time.time())
        return g.response_text

    def stream(self, task: str | Sequence[Mapping[str, Any]] | None = None, **kwargs: Any) -> Iterator[str]:
        """Yield the answer's text in pieces as it is generated; once the
        stream ends, its Generation is recorded as after :meth:`run`. Leaving
        the loop early stops the generation (nothing is recorded)."""
        messages = self._messages(task)
        params = self.generation_params(**kwargs)
        start = time.time()
        with self.model.stream(messages, **params) as pieces:
            yield from pieces
            g = pieces.generation
        if g is not None:
            self._record([g], start, time.time())

    def generate_summary(self, text: str, **kwargs: Any) -> str:
        """A summary of ``text`` written by the model."""
        return self.run(f"Summarize the following text.\n\n{text}", **kwargs)

    # -- performance bookkeeping -------------------------------------------

    def _tokens_per_second(self) -> float:
        """Generated tokens per second of generation time in the last call,
        as lmhost measured it (for a batch: all its tokens over the longest
        generation time of the batch). 0.0 before any call."""
        gens = self.last_generations
        if not gens:
            return 0.0
        if len(gens) == 1:
            return float(gens[0].tokens_per_second)
        tokens = sum(g.usage.completion_tokens for g in gens)
        ms = max(g.timings.generation_ms for g in gens)
        return tokens * 1000.0 / ms if ms > 0 else 0.0

    def _num_tokens(self, text: str | None = None) -> int:
        """Without ``text``: the tokens generated by the last call (all of a
        batch). With ``text``: its length in the model's tokens (needs
        ``Model.count_tokens``)."""
        if text is None:
            return sum(g.usage.completion_tokens for g in self.last_generations)
        count = getattr(self.model, "count_tokens", None)
        if count is None:
            raise NotImplementedError("counting the tokens of a text needs lmhost.Model.count_tokens(text) -> int")
        return int(count(text))

    def _time_for_generation(self, task: str) -> float:
        """Run ``task`` and return the seconds it took."""
        self.run(task)
        return self.get_generation_time()

    def _sec_to_first_token(self) -> float | None:
        """Seconds from the engine call to the first generated token in the
        last call, as lmhost measured it (``None`` when not measured)."""
        if self.last_generation is None:
            return None
        ms = self.last_generation.timings.time_to_first_token_ms
        return None if ms is None else ms / 1000.0

    def get_generation_time(self) -> float:
        """Seconds the last call took, from ``start_time`` to ``end_time``
        (0 before any call)."""
        if self.start_time is not None and self.end_time is not None:
            return self.end_time - self.start_time
        return 0

    def time_to_first_token(self, prompt: str) -> float:
        """Stream an answer to ``prompt`` and return the seconds until its
        first piece (the whole call's time if the answer is empty); the rest
        of the answer is not generated."""
        params = self.generation_params()
        start = time.perf_counter()
        with self.model.stream(self._messages(prompt), **params) as pieces:
            for _ in pieces:
                break
            return time.perf_counter() - start

    def generation_latency(self, prompt: str) -> float:
        """Seconds one :meth:`run` of ``prompt`` takes."""
        start = time.perf_counter()
        self.run(prompt)
        return time.perf_counter() - start

    def throughput(self, prompts: Sequence[str]) -> float:
        """Answered prompts per second, running ``prompts`` as one batch."""
        start = time.perf_counter()
        self.batch_run(prompts)
        elapsed = time.perf_counter() - start
        return len(prompts) / elapsed if elapsed > 0 else float("inf")

    def metrics(self) -> str:
        """A report of the last call (nothing is generated for it)."""
        return (
            f"SEC TO FIRST TOKEN: {self._sec_to_first_token()}\n"
            f"TOKENS/SEC: {self._tokens_per_second()}\n"
            f"TOKENS: {self._num_tokens()}\n"
            f"GENERATION TIME: {self.get_generation_time()}\n"
        )

    def track_resource_utilization(self) -> str:
        """This process's CPU time and peak memory, as a one-line report."""
        try:
            import resource
        except ImportError:  # not on Windows
            t = os.times()
            return f"cpu_user_s={t.user:.2f} cpu_system_s={t.system:.2f}"
        usage = resource.getrusage(resource.RUSAGE_SELF)
        peak_kib = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
        return f"cpu_user_s={usage.ru_utime:.2f} cpu_system_s={usage.ru_stime:.2f} max_rss_kib={peak_kib}"

    # -- history, logging, checkpoints -------------------------------------

    def clear_history(self) -> None:
        """Empty ``self.history``."""
        self.history = []

    def enable_logging(self, log_file: str = "model.log") -> None:
        """Log events (and every generation's token counts and speed) to
        ``log_file``, through the ``lmhost.llm`` logger."""
        path = os.path.abspath(log_file)
        if not any(getattr(h, "baseFilename", None) == path for h in _logger.handlers):
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter("%(asctime)s - %(message)s"))
            _logger.addHandler(handler)
        if _logger.level == logging.NOTSET or _logger.level > logging.INFO:
            _logger.setLevel(logging.INFO)
        # A logging configuration loaded later (clemcore's, on import, has
        # `disable_existing_loggers`) switches existing loggers off; asking for
        # the log switches this one back on.
        _logger.disabled = False
        self.log_file = log_file

    def log_event(self, message: str) -> None:
        """Log ``message`` (at INFO, on the ``lmhost.llm`` logger)."""
        _logger.info("%s: %s", self.model_name, message)

    def _settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SETTINGS}

    def save_checkpoint(self, checkpoint_dir: str = "checkpoints") -> str:
        """Write this LLM's state (the model's registry entry, the generation
        settings and ``history``) as JSON into ``checkpoint_dir``; returns the
        file's path. The weights stay where the registry says."""
        os.makedirs(checkpoint_dir, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = os.path.join(checkpoint_dir, f"checkpoint_{stamp}.json")
        state = {
            "model_name": self.model_name,
            "model_spec": getattr(self.model, "spec", None),
            "settings": self._settings(),
            "history": self.history,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
        self.log_event(f"checkpoint saved at {path}")
        return path

    def load_checkpoint(self, checkpoint_path: str) -> None:
        """Restore a :meth:`save_checkpoint` file: settings and history, and
        the model (loaded from its saved registry entry) if it is another."""
        with open(checkpoint_path, encoding="utf-8") as f:
            state = json.load(f)
        if state["model_name"] != self.model_name:
            self.model = self._load(state.get("model_spec") or state["model_name"])
            self.model_name = self.model.name
        for name, value in state["settings"].items():
            if name in _SETTINGS:
                setattr(self, name, value)
        self.history = state.get("history", [])
        self.log_event(f"state loaded from {checkpoint_path}")

    def toggle_creative_mode(self, enable: bool) -> None:
        """Set ``creative_mode`` (a flag kept for the interface; it does not
        change generation -- set ``temperature`` for that)."""
        self.creative_mode = enable
        self.log_event(f"creative mode {'enabled' if enable else 'disabled'}")

    # -- setters -----------------------------------------------------------

    def set_model_name(self, model_name: str) -> None:
        """Switch to the model ``model_name`` (a registry name), loading it."""
        self.model = self._load(model_name)
        self.model_name = self.model.name

    def set_temperature(self, value: float) -> None:
        """Set ``temperature``."""
        self.temperature = value

    def set_max_tokens(self, value: int) -> None:
        """Set ``max_tokens``."""
        self.max_tokens = value

    def set_max_length(self, max_length: int) -> None:
        """Set ``max_length`` (used when ``max_tokens`` is not set)."""
        self.max_length = max_length

    def set_frequency_penalty(self, frequency_penalty: float) -> None:
        """Set ``frequency_penalty``."""
        self.frequency_penalty = frequency_penalty

    def set_presence_penalty(self, presence_penalty: float) -> None:
        """Set ``presence_penalty``."""
        self.presence_penalty = presence_penalty

    def set_stop_token(self, stop_token: str) -> None:
        """Set ``stop_token`` (a stop string, besides ``stop``)."""
        self.stop_token = stop_token

    def set_length_penalty(self, length_penalty: float) -> None:
        """Set ``length_penalty`` (kept for the interface)."""
        self.length_penalty = length_penalty

    def set_role(self, role: str) -> None:
        """Set ``role`` (kept for the interface)."""
        self.role = role

    def set_top_k(self, top_k: int) -> None:
        """Set ``top_k``."""
        self.top_k = top_k

    def set_top_p(self, top_p: float) -> None:
        """Set ``top_p``."""
        self.top_p = top_p

    def set_num_beams(self, num_beams: int) -> None:
        """Set ``num_beams`` (above 1 is refused when generating)."""
        self.num_beams = num_beams

    def set_do_sample(self, do_sample: bool) -> None:
        """Set ``do_sample`` (``False``: greedy)."""
        self.do_sample = do_sample

    def set_early_stopping(self, early_stopping: bool) -> None:
        """Set ``early_stopping`` (kept for the interface)."""
        self.early_stopping = early_stopping

    def set_seed(self, seed: int) -> None:
        """Set ``seed``."""
        self.seed = seed

    def set_device(self, device: str) -> None:
        """Set ``device`` (kept for the interface; the registry entry decides)."""
        self.device = device


def _one_of(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    if value is not None and alias_value is not None and value != alias_value:
        raise TypeError(f"give `{name}` or `{alias}`, not both")
    return value if value is not None else alias_value


# -- swarm_models ------------------------------------------------------------

_swarm_lock = threading.Lock()
_swarm_classes: dict[int, type] = {}


def _loaded_base_llm() -> type | None:
    """``swarm_models.BaseLLM`` if swarm_models is already imported, else None
    (never imports it)."""
    module = sys.modules.get("swarm_models")
    base = getattr(module, "BaseLLM", None) if module is not None else None
    return base if isinstance(base, type) else None


def _swarm_class(base: type) -> type:
    """The subclass of :class:`LLM` and ``base`` (swarm_models.BaseLLM), made once."""
    with _swarm_lock:
        cls = _swarm_classes.get(id(base))
        if cls is None or cls.__bases__[1] is not base:
            cls = type(
                "SwarmLLM",
                (LLM, base),
                {
                    "__module__": __name__,
                    "__doc__": "An :class:`LLM` that is also a ``swarm_models.BaseLLM``; "
                    "``LLM``'s methods come first.",
                },
            )
            _swarm_classes[id(base)] = cls
        return cls


def __getattr__(name: str) -> Any:
    # ``lmhost.llm.SwarmLLM`` imports swarm_models on first use.
    if name == "SwarmLLM":
        import swarm_models

        return _swarm_class(swarm_models.BaseLLM)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
