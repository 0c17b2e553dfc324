"""llama.cpp thread counts on a busy machine: the default against `threads: 1`
and `threads: <every core>`, with N other processes spinning.

Usage (after `make python`):

    .venv-python/bin/python bench/threads_under_load.py --spinners 0
    .venv-python/bin/python bench/threads_under_load.py --spinners 6

One process loads SmolLM2 three times (one engine per thread setting) and runs
the same greedy request (a 160-token prompt, 64 tokens) on each in turn, `runs`
times; medians of prompt and generation tokens/s, so drift hits all three
alike. The spinners are plain busy loops in other processes, started before
the first run and stopped after the last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
from pathlib import Path

import lmhost

REPO = Path(__file__).resolve().parents[1]
PROMPT = [
    {"role": "system", "content": "You are a helpful assistant. " * 12},
    {"role": "user", "content": "Explain in a few sentences why the sky is blue, then name three colours."},
]


def spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spinners", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    host = lmhost.Host(models_dir=REPO / "models")
    settings = {"default": {}, "threads: 1": {"threads": 1}, f"threads: {cores}": {"threads": cores}}
    models = {
        label: host.load({"model_name": "SmolLM2-135M-Instruct", **extra}) for label, extra in settings.items()
    }
    for model in models.values():  # warm
        model.generate(PROMPT, max_tokens=4)
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.spinners)]
    for p in spinners:
        p.start()
    prompt_tps: dict[str, list[float]] = {label: [] for label in models}
    gen_tps: dict[str, list[float]] = {label: [] for label in models}
    prompt_tokens = completion_tokens = 0
    try:
        for _ in range(args.runs):
            for label, model in models.items():
                g = model.generate(PROMPT, max_tokens=args.max_tokens, temperature=0)
                prompt_tps[label].append(g.usage.prompt_tokens * 1000 / g.timings.prompt_ms)
                gen_tps[label].append(g.tokens_per_second)
                prompt_tokens, completion_tokens = g.usage.prompt_tokens, g.usage.completion_tokens
    finally:
        for p in spinners:
            p.terminate()
    print(
        f"{cores} cores, {args.spinners} spinning processes, {args.runs} runs, "
        f"prompt {prompt_tokens} tokens, generation {completion_tokens} tokens"
    )
    print("| setting | prompt t/s | generation t/s |")
    print("|---|---|---|")
    for label in models:
        print(f"| {label} | {statistics.median(prompt_tps[label]):.1f} | {statistics.median(gen_tps[label]):.1f} |")


if __name__ == "__main__":
    main()
