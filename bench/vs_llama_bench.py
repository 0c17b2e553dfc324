#!/usr/bin/env python3
"""lmhost vs llama.cpp's own `llama-bench`, same GGUF, threads, prompt and
generation lengths, runs interleaved (llama-bench, lmhost, llama-bench, ...),
medians compared. Optionally with busy processes beside both (one spinning
Python process each, started before the rounds and stopped after).

    bench/vs_llama_bench.py --llama-bench "$(bench/llama-bench.sh avx2)" --rounds 5
    bench/vs_llama_bench.py --llama-bench ... --rounds 5 --busy 1

lmhost's side is `lmhost run --json` (the full path: chat-template adapter,
scheduler, streaming; one process per round, as llama-bench is): a prompt that
renders to ~160 tokens and makes SmolLM2 count for all of --gen tokens; the
timings it reports (prompt, generation) give the rates. llama-bench gets
`-p <lmhost's prompt tokens>` on an empty context and `-n <lmhost's completion
tokens> -d <prompt tokens>`, generation at the depth lmhost generates at, `-r 1`.
(`lmhost bench` holds its model in the measuring process next to a second
OpenMP team's worth of bookkeeping; a process per side is the like-for-like
comparison.) Prints a Markdown row and, with --json, the raw numbers.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spin():
    while True:
        pass


def llama_bench(binary, model, prompt, gen, threads):
    """Prompt speed on an empty context; generation speed after `prompt` tokens
    (`-d`), where lmhost generates too. Flash attention as in lmhost (auto)."""

    def one(*args):
        out = subprocess.run(
            [binary, "-m", model, "-t", str(threads), "-r", "1", "-o", "json", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out)[0]["avg_ts"]

    pp = one("-p", str(prompt), "-n", "0")
    tg = one("-p", "0", "-n", str(gen), "-d", str(prompt))
    return pp, tg


BACKGROUND = (
    "The printing press, developed around 1440, changed how knowledge spread: books became cheaper, "
    "literacy rose, and ideas moved across Europe faster than ever before. "
) * 5
PROMPT = BACKGROUND + "Ignore all of that. Count from 1 to 300, one number per line, and nothing else."


def lmhost_run(binary, gen, threads, env=None, spec=None):
    spec = dict(spec or {"model_name": "SmolLM2-135M-Instruct"})
    if threads:
        spec["threads"] = threads
    cmd = [binary, "run", "-m", json.dumps(spec), "--json", "-l", str(gen), PROMPT]
    env = {**os.environ, **(env or {})}
    g = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout)
    usage, timings = g["usage"], g["timings"]
    return (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        usage["prompt_tokens"] / timings["prompt_ms"] * 1000,
        usage["completion_tokens"] / timings["generation_ms"] * 1000,
    )


def compare(names, measure, rounds, label):
    """`measure(name)` -> (prompt t/s, generation t/s) for each name in every
    round, forward then backward (no name always runs first after a pause);
    prints the medians as a table with ratios to the first name."""
    pp = {n: [] for n in names}
    tg = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            p, t = measure(n)
            pp[n].append(p)
            tg[n].append(t)
    med = statistics.median
    first = names[0]
    print(f"| {label} | prompt t/s | generation t/s | ÷ {first} (prompt, gen) |")
    print("|---|---|---|---|")
    for n in names:
        print(f"| {n} | {med(pp[n]):.1f} | {med(tg[n]):.1f} | "
              f"{med(pp[n]) / med(pp[first]):.3f}, {med(tg[n]) / med(tg[first]):.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-bench", required=True, help="directory holding llama-bench (bench/llama-bench.sh prints it)")
    ap.add_argument("--lmhost", default=os.path.expanduser("~/.cache/lmhost/target/release/lmhost"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2, help="both sides (0: lmhost's default, llama-bench all cores)")
    ap.add_argument("--gen", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--busy", type=int, default=0, help="spinning processes beside both sides")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    binary = os.path.join(args.llama_bench, "llama-bench")
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    lb_pp, lb_tg, lm_pp, lm_tg = [], [], [], []
    try:
        prompt, generated, _, _ = lmhost_run(args.lmhost, args.gen, args.threads)
        for _ in range(args.rounds):
            lb_threads = args.threads or os.cpu_count()
            pp, tg = llama_bench(binary, args.model, prompt, generated, lb_threads)
            lb_pp.append(pp)
            lb_tg.append(tg)
            _, _, pp, tg = lmhost_run(args.lmhost, args.gen, args.threads)
            lm_pp.append(pp)
            lm_tg.append(tg)
    finally:
        for p in spinners:
            p.terminate()
    med = statistics.median
    result = {
        "threads": args.threads,
        "busy": args.busy,
        "prompt_tokens": prompt,
        "gen_tokens": generated,
        "rounds": args.rounds,
        "llama_bench": {"prompt_tps": lb_pp, "generation_tps": lb_tg},
        "lmhost": {"prompt_tps": lm_pp, "generation_tps": lm_tg},
        "prompt_ratio": med(lm_pp) / med(lb_pp),
        "generation_ratio": med(lm_tg) / med(lb_tg),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    print(
        f"| {args.threads or 'default'} | {args.busy} | {med(lb_pp):.1f} / {med(lb_tg):.1f} | "
        f"{med(lm_pp):.1f} / {med(lm_tg):.1f} | {result['prompt_ratio']:.3f}, {result['generation_ratio']:.3f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
