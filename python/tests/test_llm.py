"""lmhost.LLM, the swarm_models-style BaseLLM, on the real SmolLM2 (greedy,
a few tokens per call), and with the real swarm_models package: an LLM is a
``swarm_models.BaseLLM``, and BaseLLM's own methods drive it through ``run``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import lmhost
from conftest import SMOLLM2, mock_spec
from lmhost.llm import LLM

QUESTION = "What is the capital of France?"
TASKS = ["Name a colour.", "What is 2 + 2?"]


class Spy:
    """A model that records which of its generating methods were called."""

    def __init__(self, model: lmhost.Model) -> None:
        self.model = model
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def generate(self, messages: Any, **params: Any) -> lmhost.Generation:
        self.calls.append(("generate", 1))
        return self.model.generate(messages, **params)

    def generate_batch(self, requests: list[Any], **params: Any) -> list[lmhost.Generation]:
        self.calls.append(("generate_batch", len(requests)))
        return self.model.generate_batch(requests, **params)

    def agenerate_batch(self, requests: list[Any], **params: Any) -> Any:
        self.calls.append(("agenerate_batch", len(requests)))
        return self.model.agenerate_batch(requests, **params)


@pytest.fixture
def llm(smollm2: lmhost.Model) -> LLM:
    return LLM(smollm2, temperature=0.0, max_tokens=8)


def test_exported_from_the_package() -> None:
    assert lmhost.LLM is LLM


def test_run_returns_the_answer_and_keeps_the_generation(llm: LLM) -> None:
    answer = llm.run(QUESTION)
    g = llm.last_generation
    assert isinstance(answer, str) and answer.strip()
    assert answer == g.response_text
    assert QUESTION in g.prompt
    assert 0 < g.usage.completion_tokens <= 8
    assert llm.last_generations == [g]
    # Greedy: the same answer again, through __call__.
    assert llm(QUESTION) == answer


def test_loads_a_registry_name_through_the_host(host: lmhost.Host) -> None:
    by_name = LLM(SMOLLM2, host=host, max_tokens=4)
    assert by_name.model_name == SMOLLM2
    assert by_name.run("Hi").strip()
    # BaseLLM's own way to name the model.
    assert LLM(model_name=SMOLLM2, host=host).model.name == SMOLLM2
    with pytest.raises(lmhost.ModelNotFound):
        LLM("no-such-model-anywhere", host=host)
    with pytest.raises(TypeError):
        LLM(42)


def test_system_prompt_and_per_call_parameters(smollm2: lmhost.Model) -> None:
    llm = LLM(smollm2, system_prompt="Answer in French.", temperature=0.0, max_tokens=8)
    llm.run(QUESTION, max_tokens=2)
    g = llm.last_generation
    assert g.prompt.index("Answer in French.") < g.prompt.index(QUESTION)
    assert g.usage.completion_tokens == 2 and g.finish_reason == "length"
    assert llm.max_tokens == 8  # a per-call keyword changes that call only
    with pytest.raises(lmhost.InvalidRequest, match="no_such_parameter"):
        llm.run(QUESTION, no_such_parameter=1)


def test_max_length_bounds_the_answer_when_max_tokens_is_unset(smollm2: lmhost.Model) -> None:
    llm = LLM(smollm2, temperature=0.0, max_length=3)
    llm.run("Tell me a long story about a dragon.")
    assert llm.last_generation.usage.completion_tokens == 3
    llm.set_max_tokens(2)
    llm.run("Tell me a long story about a dragon.")
    assert llm.last_generation.usage.completion_tokens == 2


def test_stop_token_ends_the_answer_before_it(smollm2: lmhost.Model) -> None:
    full = LLM(smollm2, temperature=0.0, max_tokens=12).run(QUESTION)
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]
    cut = LLM(smollm2, temperature=0.0, max_tokens=12, stop_token=stop).run(QUESTION)
    assert stop not in cut
    assert full.startswith(cut.rstrip())
    assert len(cut) < len(full)


def test_do_sample_false_is_greedy(smollm2: lmhost.Model, llm: LLM) -> None:
    greedy = llm.run("Write a word.", max_tokens=12)
    forced = LLM(smollm2, temperature=1.5, seed=7, do_sample=False, max_tokens=12)
    assert forced.run("Write a word.") == greedy
    assert forced.generation_params()["temperature"] == 0.0


def test_beam_search_is_refused_before_generating(smollm2: lmhost.Model) -> None:
    spy = Spy(smollm2)
    llm = LLM(spy, num_beams=1, max_tokens=2)
    llm.run("Hi")  # one beam is plain decoding
    llm.set_num_beams(3)
    with pytest.raises(ValueError, match="num_beams=3"):
        llm.run("Hi")
    with pytest.raises(ValueError, match="num_return_sequences=2"):
        LLM(spy, num_return_sequences=2).batch_run(["Hi"])
    assert spy.calls == [("generate", 1)]


def test_arun_equals_run(llm: LLM) -> None:
    answer = llm.run(QUESTION)
    assert asyncio.run(llm.arun(QUESTION)) == answer
    assert llm.last_generation.response_text == answer


def test_batch_run_is_one_generate_batch_call_equal_to_single_runs(smollm2: lmhost.Model, llm: LLM) -> None:
    singles = [llm.run(t) for t in TASKS]
    spy = Spy(smollm2)
    batched = LLM(spy, temperature=0.0, max_tokens=8)
    assert batched.batch_run(TASKS) == singles
    assert spy.calls == [("generate_batch", len(TASKS))]
    assert [g.response_text for g in batched.last_generations] == singles
    assert batched.last_generation is batched.last_generations[-1]
    assert batched._num_tokens() == sum(g.usage.completion_tokens for g in batched.last_generations)
    assert batched._tokens_per_second() > 0
    assert batched.batch_run([]) == []
    spy.calls.clear()
    assert asyncio.run(batched.abatch_run(TASKS)) == singles
    assert spy.calls == [("agenerate_batch", len(TASKS))]


def test_chat_with_history(smollm2: lmhost.Model) -> None:
    llm = LLM(smollm2, system_prompt="You are a helpful assistant.", temperature=0.0, max_tokens=6)
    # BaseLLM's shape: the history as a string, after the task.
    answer = llm.chat("What is my name?", "My name is Ada.")
    assert "What is my name? | My name is Ada." in llm.last_generation.prompt
    assert answer == llm.last_generation.response_text
    llm.chat(QUESTION)  # no history: the task alone
    assert QUESTION in llm.last_generation.prompt and " | " not in llm.last_generation.prompt
    # Message dicts: earlier turns, then the task as the next user turn.
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
    ]
    answer = llm.chat("What is my name?", history)
    expected = [{"role": "system", "content": "You are a helpful assistant."}, *history,
                {"role": "user", "content": "What is my name?"}]
    direct = smollm2.generate(expected, temperature=0.0, max_tokens=6)
    assert llm.last_generation.prompt == direct.prompt
    assert answer == direct.response_text
    assert llm.history == []  # chat leaves the LLM's own history alone
    with pytest.raises(TypeError):
        llm.chat("What is my name?", 3)


def test_stream_pieces_join_to_the_answer(llm: LLM) -> None:
    answer = llm.run(QUESTION)
    llm.last_generation = None
    pieces = list(llm.stream(QUESTION))
    assert len(pieces) > 1
    assert "".join(pieces) == answer
    assert llm.last_generation.response_text == answer


def test_speed_and_time_bookkeeping(llm: LLM) -> None:
    assert llm._tokens_per_second() == 0.0 and llm.get_generation_time() == 0
    llm.run(QUESTION)
    g = llm.last_generation
    assert llm._tokens_per_second() == g.tokens_per_second > 0
    assert llm._num_tokens() == g.usage.completion_tokens
    # With a text: its length in the model's own tokens.
    assert llm._num_tokens(QUESTION) == llm.model.count_tokens(QUESTION) > 5
    wall = llm.end_time - llm.start_time
    assert llm.get_generation_time() == wall >= g.timings.generation_ms / 1000
    assert llm._sec_to_first_token() == g.timings.time_to_first_token_ms / 1000 > 0
    assert llm._time_for_generation(QUESTION) == llm.get_generation_time() > 0
    assert llm.generation_latency(QUESTION) > 0
    assert llm.time_to_first_token(QUESTION) > 0
    assert llm.throughput(TASKS) > 0 and len(llm.last_generations) == len(TASKS)
    report = llm.metrics()
    assert f"TOKENS: {llm._num_tokens()}" in report and "TOKENS/SEC: " in report
    assert "cpu_user_s=" in llm.track_resource_utilization()


def test_setters_summary_logging_and_checkpoints(smollm2: lmhost.Model, host: lmhost.Host, tmp_path: Any) -> None:
    llm = LLM(smollm2, max_tokens=6)
    llm.set_temperature(0.0)
    llm.set_top_k(40)
    llm.set_top_p(0.9)
    llm.set_seed(3)
    llm.set_stop_token("\n\n")
    llm.set_frequency_penalty(0.1)
    llm.set_presence_penalty(0.2)
    assert llm.generation_params() == {
        "max_tokens": 6, "temperature": 0.0, "top_k": 40, "top_p": 0.9, "seed": 3,
        "stop": ["\n\n"], "frequency_penalty": 0.1, "presence_penalty": 0.2,
    }
    assert llm.generate_summary("The cat sat on the mat all day long, watching birds.").strip()
    assert "Summarize" in llm.last_generation.prompt

    log = tmp_path / "model.log"
    llm.enable_logging(str(log))
    llm.run("Hi")
    llm.history = [{"role": "user", "content": "Hi"}]
    path = llm.save_checkpoint(str(tmp_path / "checkpoints"))
    logged = log.read_text()
    assert "tokens/s" in logged and "checkpoint saved" in logged

    other = LLM(mock_spec(reply="x"), host=host)
    other.load_checkpoint(path)
    assert other.model_name == SMOLLM2
    assert other.generation_params() == llm.generation_params()
    assert other.history == llm.history
    assert json.loads(open(path).read())["model_name"] == SMOLLM2


# -- swarm_models -------------------------------------------------------------

needs_swarm = pytest.mark.skipif(
    importlib.util.find_spec("swarm_models") is None,
    reason="swarm_models is not installed (python/LLM.md says how to install it)",
)


@needs_swarm
def test_is_a_swarm_models_base_llm(smollm2: lmhost.Model, host: lmhost.Host) -> None:
    import swarm_models

    from lmhost.llm import SwarmLLM

    llm = LLM(smollm2, temperature=0.0, max_tokens=8)
    assert isinstance(llm, swarm_models.BaseLLM) and isinstance(llm, LLM)
    assert type(llm) is SwarmLLM
    # BaseLLM's documented construction.
    seed_style = SwarmLLM(model_name=SMOLLM2, host=host, max_tokens=8, temperature=0.0, top_k=50, top_p=0.9, device="cpu")
    assert isinstance(seed_style, swarm_models.BaseLLM)
    assert seed_style.run(QUESTION) == llm.run(QUESTION)
    # A subclass of LLM keeps its own bases.
    assert not isinstance(type("Mine", (LLM,), {})(smollm2), swarm_models.BaseLLM)


@needs_swarm
def test_base_llm_methods_drive_it_through_run(smollm2: lmhost.Model) -> None:
    from swarm_models import BaseLLM

    llm = LLM(smollm2, temperature=0.0, max_tokens=8)
    answer = llm.run(QUESTION)
    singles = [llm.run(t) for t in TASKS]
    # swarm_models' own implementations, each calling llm.run / llm.arun.
    assert BaseLLM.__call__(llm, QUESTION) == answer
    assert BaseLLM.chat(llm, "What is my name?", "My name is Ada.") == llm.last_generation.response_text
    assert "What is my name? | My name is Ada." in llm.last_generation.prompt
    assert BaseLLM.batch_run(llm, TASKS) == singles
    assert asyncio.run(BaseLLM.arun(llm, QUESTION)) == answer
    assert asyncio.run(BaseLLM.abatch_run(llm, TASKS)) == singles
    assert BaseLLM.generation_latency(llm, QUESTION) > 0
    assert llm.last_generation.response_text == answer
    # BaseLLM's speed formula over this LLM's bookkeeping.
    assert BaseLLM._tokens_per_second(llm) > 0
    assert BaseLLM.get_generation_time(llm) == llm.get_generation_time() > 0


def test_import_lmhost_does_not_import_swarm_models(tmp_path: Any) -> None:
    check = textwrap.dedent(
        f"""
        import sys, importlib.util
        import lmhost
        from lmhost.llm import LLM
        assert "swarm_models" not in sys.modules
        model = lmhost.Host().load({mock_spec(reply="ok")!r})
        llm = LLM(model)
        assert type(llm) is LLM and llm.run("hi") == "ok"
        assert "swarm_models" not in sys.modules
        if importlib.util.find_spec("swarm_models") is not None:
            import swarm_models
            assert isinstance(LLM(model), swarm_models.BaseLLM)
            assert not isinstance(llm, swarm_models.BaseLLM)  # built before the import
        print("checked")
        """
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "checked"
