"""The clemcore backend (lmhost.clemcore) under the real clemcore 3.7.2 and the
real SmolLM2: `clem run` in-process on a one-question game (tests/clemgame),
sequential and batched, from a fresh folder set up with
`python -m lmhost.clemcore install`; context overflow; entry checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import lmhost
from conftest import MODELS, SMOLLM2

GAMES = Path(__file__).resolve().parent / "clemgame"
GAME = "colour_quiz"
QUESTIONS = json.loads((GAMES / GAME / "in" / "instances.json").read_text())["experiments"][0]["game_instances"]
TINY_CONTEXT = 64

# clemcore's model_registry.json for the runs (lmhost reads it too, and skips
# these entries).
CLEM_REGISTRY = [
    {"model_name": "smol-lmhost", "backend": "lmhost", "model_config": {"lmhost_model": SMOLLM2}},
    {
        "model_name": "smol-lmhost-tiny",
        "backend": "lmhost",
        "model_config": {
            "lmhost_spec": {"model_name": SMOLLM2, "backend": "llamacpp", "model_config": {"n_ctx": TINY_CONTEXT}}
        },
    },
    {"model_name": "ghost-lmhost", "backend": "lmhost", "model_config": {"lmhost_model": "No-Such-Model-xyz"}},
]


@pytest.fixture(scope="session")
def clem(tmp_path_factory: pytest.TempPathFactory):
    """clemcore and the backend, imported from a scratch folder: importing
    clemcore opens clembench.log in the current folder. lmhost finds SmolLM2
    through $LMHOST_MODELS_DIR."""
    if not (MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file():
        pytest.fail(f"the test model is missing from {MODELS}: run `make model`")
    session_dir = tmp_path_factory.mktemp("clemcore-session")
    saved = {k: os.environ.get(k) for k in ("LMHOST_MODELS_DIR", "HF_HUB_OFFLINE")}
    os.environ["LMHOST_MODELS_DIR"] = str(MODELS)
    os.environ["HF_HUB_OFFLINE"] = "1"
    cwd = os.getcwd()
    os.chdir(session_dir)
    try:
        import clemcore.backends
        import clemcore.cli
        from clemcore.backends.utils import ContextExceededError

        import lmhost.clemcore
        from lmhost.clemcore import __main__ as main
        from lmhost.clemcore import _backend
    finally:
        os.chdir(cwd)
    _backend.set_host(None)
    yield SimpleNamespace(
        cli=clemcore.cli,
        backends=clemcore.backends,
        ContextExceededError=ContextExceededError,
        api=lmhost.clemcore,
        impl=_backend,
        main=main,
        log=session_dir / "clembench.log",
    )
    _backend.set_host(None)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def workdir(clem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder set up for `clem run`: lmhost_api.py installed, clemcore's
    model registry, and a game registry pointing at tests/clemgame."""
    monkeypatch.chdir(tmp_path)
    assert clem.main.main(["install"]) == 0
    (tmp_path / "model_registry.json").write_text(json.dumps(CLEM_REGISTRY))
    (tmp_path / "game_registry.json").write_text(json.dumps([{"benchmark_path": str(GAMES)}]))
    return tmp_path


class Recording:
    """Stands between the backend and an lmhost.Model, counting the calls."""

    def __init__(self, model: lmhost.Model):
        self.model = model
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def generate(self, messages, **params):
        self.calls.append(("generate", 1))
        return self.model.generate(messages, **params)

    def generate_batch(self, requests, **params):
        requests = list(requests)
        self.calls.append(("generate_batch", len(requests)))
        return self.model.generate_batch(requests, **params)


@pytest.fixture
def recordings(clem, monkeypatch: pytest.MonkeyPatch) -> list[Recording]:
    made: list[Recording] = []
    load = clem.impl._load

    def recording_load(model_spec):
        made.append(Recording(load(model_spec)))
        return made[-1]

    monkeypatch.setattr(clem.impl, "_load", recording_load)
    return made


def log_tail(clem) -> str:
    text = clem.log.read_text(errors="replace") if clem.log.exists() else "(no clembench.log)"
    return text[-4000:]


def clem_run(clem, workdir: Path, model: str, *, batch_size: int, max_tokens: int = 8) -> Path:
    """`clem run -g colour_quiz -m MODEL -t 0 -l MAX_TOKENS -b BATCH_SIZE`; the run's folder."""
    try:
        clem.cli.run(
            GAME,
            clem.backends.ModelSpec.from_strings([model]),
            gen_args=dict(temperature=0.0, max_tokens=max_tokens),
            results_dir_path=workdir / "results",
            batch_size=batch_size,
        )
    except SystemExit as exit:  # clemcore exits 1 when a game failed
        pytest.fail(f"clem run exited with {exit.code}:\n{log_tail(clem)}")
    return workdir / "results" / model / GAME / "colours"


def check_episodes(clem, run_dir: Path, model: lmhost.Model, max_tokens: int) -> list[str]:
    """Both episodes completed; each recorded prompt is exactly what lmhost
    (`model`) renders for the question; the answers are recorded alike everywhere."""
    answers = []
    for question in QUESTIONS:
        episode = run_dir / f"instance_{question['game_id']:05d}"
        assert (episode / "completed.json").is_file(), f"{episode} did not complete:\n{log_tail(clem)}"
        calls = json.loads((episode / "player_1.requests.json").read_text())["calls"]
        assert len(calls) == 1
        prompt = calls[0]["call"]["manipulated_prompt_obj"]
        response = calls[0]["call"]["raw_response_obj"]

        # clemcore's local-backend record, carrying lmhost's exact prompt text.
        assert set(prompt) == {"inputs", "max_new_tokens", "temperature"}
        assert prompt["max_new_tokens"] == max_tokens and prompt["temperature"] == 0.0
        messages = [{"role": "user", "content": question["question"]}]
        assert prompt["inputs"] == model.generate(messages, max_tokens=1).prompt
        assert prompt["inputs"].startswith("<|im_start|>")
        assert f"<|im_start|>user\n{question['question']}<|im_end|>" in prompt["inputs"]
        assert prompt["inputs"].endswith("<|im_start|>assistant\n")

        # The raw engine output, with usage, and clemcore's own record of the answer.
        assert isinstance(response["response"], str) and response["response"]
        assert 0 < response["usage"]["completion_tokens"] <= max_tokens
        assert response["finish_reason"] in ("stop", "length")
        answer = response["clem_player"]["response"]
        assert answer.strip() and "<|im_end|>" not in answer
        assert response["clem_player"]["model_name"] == run_dir.parts[-3]

        turns = json.loads((episode / "interactions.json").read_text())["turns"][0]
        said = [t["action"]["content"] for t in turns if t["action"]["type"] == "get message"]
        assert said == [answer]
        answers.append(answer)
    return answers


def test_clem_run_records_the_prompt_lmhost_rendered(clem, workdir: Path, recordings) -> None:
    run_dir = clem_run(clem, workdir, "smol-lmhost", batch_size=1)
    # The sequential runner: one generate per episode, no batch.
    assert len(recordings) == 1
    assert recordings[0].calls == [("generate", 1), ("generate", 1)]
    assert isinstance(recordings[0].model, lmhost.Model) and recordings[0].model.name == SMOLLM2
    check_episodes(clem, run_dir, recordings[0].model, max_tokens=8)


def test_clem_run_with_batch_size_goes_through_generate_batch(clem, workdir: Path, recordings) -> None:
    run_dir = clem_run(clem, workdir, "smol-lmhost", batch_size=2)
    # clemcore's batchwise runner: both episodes in one lmhost generate_batch.
    assert len(recordings) == 1
    assert recordings[0].calls == [("generate_batch", 2)]
    check_episodes(clem, run_dir, recordings[0].model, max_tokens=8)


def test_gen_args_reach_lmhost(clem, workdir: Path) -> None:
    model = clem.backends.load_model("smol-lmhost", gen_args=dict(temperature=0.0, max_tokens=3))
    assert isinstance(model, clem.backends.BatchGenerativeModel) and model.supports_batching()
    messages = [{"role": "user", "content": "Count from one to twenty in words."}]
    prompt, response, text = model.generate_response(messages)
    assert prompt["max_new_tokens"] == 3 and prompt["temperature"] == 0.0
    assert response["usage"]["completion_tokens"] == 3 and response["finish_reason"] == "length"
    assert text and response["clem_player"]["response"] == text
    # Greedy: the same answer again; a longer budget writes more.
    assert model.generate_response(messages)[2] == text
    model.set_gen_args(temperature=0.0, max_tokens=12, seed=7)
    prompt, response, longer = model.generate_response(messages)
    assert prompt["max_new_tokens"] == 12 and prompt["seed"] == 7
    assert response["usage"]["completion_tokens"] > 3 and len(longer) > len(text)


def test_context_overflow_raises_clemcores_error_with_token_counts(clem, workdir: Path) -> None:
    model = clem.backends.load_model("smol-lmhost-tiny", gen_args=dict(temperature=0.0, max_tokens=16))
    assert model.context_size == TINY_CONTEXT
    short = [{"role": "user", "content": "Hi"}]
    long = [{"role": "user", "content": "Please repeat these words: " + "blue green red " * 40}]
    assert model.generate_response(short)[2]  # fits: the overflow below is the prompt's length

    with pytest.raises(clem.ContextExceededError) as raised:
        model.generate_response(long)
    error = raised.value
    cause = error.__cause__
    assert isinstance(cause, lmhost.ContextLengthExceeded)
    assert cause.max_tokens == 16 and cause.prompt_tokens > TINY_CONTEXT
    assert error.context_size == TINY_CONTEXT
    assert error.tokens_used == cause.prompt_tokens + 16
    assert error.tokens_left == TINY_CONTEXT - error.tokens_used < 0
    assert "smol-lmhost-tiny" in str(error) and f"{error.tokens_used}/{TINY_CONTEXT}" in str(error)

    with pytest.raises(clem.ContextExceededError) as raised:
        model.generate_batch_response([short, long])
    assert raised.value.context_size == TINY_CONTEXT and raised.value.tokens_left < 0


def test_an_unknown_lmhost_model_names_the_clemcore_entry(clem, workdir: Path) -> None:
    with pytest.raises(lmhost.ModelNotFound) as raised:
        clem.backends.load_model("ghost-lmhost", gen_args=dict(temperature=0.0, max_tokens=8))
    assert "No-Such-Model-xyz" in str(raised.value)
    assert any("ghost-lmhost" in note for note in getattr(raised.value, "__notes__", []))


def test_an_entry_named_like_its_lmhost_model_runs_it(clem, workdir: Path) -> None:
    # Without lmhost_model the entry's own name is the lmhost name. lmhost
    # reads ./model_registry.json too, where that name is this very entry:
    # lmhost skips clemcore's "lmhost" entries and finds its own model.
    registry = CLEM_REGISTRY + [{"model_name": SMOLLM2, "backend": "lmhost"}]
    (workdir / "model_registry.json").write_text(json.dumps(registry))
    previous = clem.impl.get_host()
    clem.impl.set_host(lmhost.Host())  # reads this folder's registry, as under `clem run`
    try:
        model = clem.backends.load_model(SMOLLM2, gen_args=dict(temperature=0.0, max_tokens=4))
        assert model.model_spec.backend == "lmhost"
        assert model.lmhost_model.name == SMOLLM2 and model.lmhost_model.backend == "llamacpp"
        prompt, response, text = model.generate_response([{"role": "user", "content": "Name a colour."}])
        assert "<|im_start|>user\nName a colour.<|im_end|>" in prompt["inputs"] and text
    finally:
        clem.impl.set_host(previous)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"model_name": "a", "backend": "lmhost"}, ("a", "model_name")),
        ({"model_name": "a", "backend": "lmhost", "model_config": {"lmhost_model": "B"}}, ("B", "lmhost_model")),
        ({"model_name": "a", "backend": "lmhost", "lmhost_model": "B"}, ("B", "lmhost_model")),
        (
            {"model_name": "a", "backend": "lmhost", "model_config": {"lmhost_model": {"model_name": "B", "backend": "mock"}}},
            ({"model_name": "B", "backend": "mock"}, "lmhost_model"),
        ),
        (
            {"model_name": "a", "backend": "lmhost", "model_config": {"lmhost_spec": {"model_name": "B", "backend": "llamacpp"}}},
            ({"model_name": "B", "backend": "llamacpp"}, "lmhost_spec"),
        ),
    ],
)
def test_entry_keys_name_the_lmhost_query(clem, entry, expected) -> None:
    assert clem.api.lmhost_query(clem.backends.ModelSpec.from_dict(entry)) == expected


@pytest.mark.parametrize(
    ("model_config", "top_level", "words"),
    [
        ({"lmhost_model": "B", "lmhost_spec": {"model_name": "B", "backend": "mock"}}, {}, ["lmhost_model", "lmhost_spec"]),
        ({"lmhost_model": "B"}, {"lmhost_model": "C"}, ["lmhost_model", "'B'", "'C'"]),
        ({"lmhost_model": 7}, {}, ["lmhost_model", "int"]),
        ({"lmhost_model": " "}, {}, ["lmhost_model", "empty"]),
        ({"lmhost_spec": {"model_name": "B"}}, {}, ["lmhost_spec", "'backend'"]),
        ({"lmhost_spec": {"model_name": "B", "backend": "lmhost"}}, {}, ["lmhost_spec", "'lmhost'"]),
        ({"lmhost_model": {"model_name": "B", "backend": "lmhost"}}, {}, ["lmhost_model", "'lmhost'"]),
        ({"lmhost_spec": "B"}, {}, ["lmhost_spec", "str"]),
    ],
)
def test_bad_entries_are_refused_naming_entry_and_key(clem, model_config, top_level, words) -> None:
    spec = clem.backends.ModelSpec.from_dict(
        {"model_name": "bad-entry", "backend": "lmhost", "model_config": model_config, **top_level}
    )
    with pytest.raises(ValueError) as raised:
        clem.api.LmhostBackend().get_model_for(spec)
    message = str(raised.value)
    for word in ["'bad-entry'", *words]:
        assert word in message


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lmhost.clemcore", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_install_command(tmp_path: Path) -> None:
    from lmhost.clemcore import __main__ as main

    source = main.SOURCE.read_text()
    assert "from lmhost.clemcore import LmhostBackend" in source

    # Default folder: the current one. clemcore is not imported (no clembench.log).
    done = run_module("install", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "lmhost_api.py"
    assert target.read_text() == source and "installed" in done.stdout and str(target) in done.stdout
    assert not (tmp_path / "clembench.log").exists()

    done = run_module("install", str(tmp_path), cwd=tmp_path.parent)
    assert done.returncode == 0 and "unchanged" in done.stdout

    target.write_text("# someone else's backend\n")
    done = run_module("install", str(tmp_path), cwd=tmp_path.parent)
    assert done.returncode == 1 and "--force" in done.stderr
    assert target.read_text() == "# someone else's backend\n"

    done = run_module("install", str(tmp_path), "--force", cwd=tmp_path.parent)
    assert done.returncode == 0 and "overwrote" in done.stdout
    assert target.read_text() == source

    done = run_module("install", str(tmp_path / "missing"), cwd=tmp_path)
    assert done.returncode == 2 and "not a folder" in done.stderr
    assert not (tmp_path / "missing").exists()


def test_registry_command_prints_an_entry(tmp_path: Path) -> None:
    done = run_module("registry", SMOLLM2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"model_name": SMOLLM2, "backend": "lmhost"}]
    done = run_module("registry", SMOLLM2, "--name", "smol", cwd=tmp_path)
    assert json.loads(done.stdout) == [
        {"model_name": "smol", "backend": "lmhost", "model_config": {"lmhost_model": SMOLLM2}}
    ]
