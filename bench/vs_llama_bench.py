#!/usr/bin/env python3
"""lmhost vs llama.cpp's own `llama-bench`, same GGUF, threads, prompt and
generation lengths, runs interleaved (llama-bench, lmhost, llama-bench, ...),
medians compared. Optionally with busy processes beside both (one spinning
Python process each, started before the rounds and stopped after).

    bench/vs_llama_bench.py --llama-bench "$(bench/llama-bench.sh avx2)" --rounds 5
    bench/vs_llama_bench.py --llama-bench ... --rounds 5 --busy 1

lmhost's side is `lmhost bench` (the full path: chat-template adapter,
scheduler, streaming; the rendered prompt is 162 tokens for SmolLM2), one run
per round; llama-bench gets `-p <that prompt length> -n <max tokens> -r 1`.
Prints a Markdown row and, with --json, the raw numbers.
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
    out = subprocess.run(
        [binary, "-m", model, "-p", str(prompt), "-n", str(gen), "-t", str(threads), "-r", "1", "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = json.loads(out)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return pp, tg


def lmhost_bench(binary, gen, threads):
    cmd = [binary, "bench", "--runs", "1", "-l", str(gen), "--concurrency", "1", "--json"]
    if threads:
        cmd += ["--threads", str(threads)]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout)
    return report["prompt_tokens"], report["lmhost"]["prompt_tps"], report["lmhost"]["generation_tps"]


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
        prompt = None
        for _ in range(args.rounds):
            if prompt is None:
                prompt, _, _ = lmhost_bench(args.lmhost, 8, args.threads)
            lb_threads = args.threads or os.cpu_count()
            pp, tg = llama_bench(binary, args.model, prompt, args.gen, lb_threads)
            lb_pp.append(pp)
            lb_tg.append(tg)
            _, pp, tg = lmhost_bench(args.lmhost, args.gen, args.threads)
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
        "gen_tokens": args.gen,
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
