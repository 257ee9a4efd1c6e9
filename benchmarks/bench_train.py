#!/usr/bin/env python
"""End-to-end fairseq-train throughput and peak memory: baseline vs SKD, same model and seed.

  bench_train.py --config configs/multi30k-de-en-demo.sh --updates 60 --rounds 2 \\
      --variant baseline=baseline \\
      --variant skd-R0="skd-neighbours --skd-neighbour-refresh 0" \\
      --variant skd-R50="skd-neighbours --skd-neighbour-refresh 50" \\
      --variant skd-predicted=skd-predicted --json out.json --markdown -

Teacher-based presets take their teacher like scripts/train.sh does, e.g.
--variant word-kd="word-kd --teacher runs/kd-multi30k/teacher/checkpoint_best.pt".

Each variant is a criterion preset (configs/presets.sh) plus extra fairseq flags. Runs
are fresh (no resumption), alternate between variants round by round, and each reports
the median target tokens/s of its train_inner records after the first --skip-updates
updates (start-up and the first table build excluded) and the peak memory of
the run (the GPU's when it used one, else the host's resident set; see
scripts/run_and_measure.py). Ratios are to the first variant, measured in the same run.
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from reporting import commit, write_outputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INNER = re.compile(r"\| train_inner \| .*?wps=([0-9.]+).*?num_updates=(\d+)")


def run_variant(config, preset, flags, updates, log_interval, save_dir):
    cmd = ["bash", os.path.join(REPO, "scripts", "train.sh"), config, "--criterion-preset", preset,
           "--save-dir", save_dir, "--max-update", str(updates), "--log-interval", str(log_interval),
           "--disable-validation", "--no-save", *flags]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"bench_train: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    records = [(float(m.group(1)), int(m.group(2))) for m in map(INNER.search, proc.stdout.splitlines()) if m]
    with open(os.path.join(save_dir, "train.json")) as f:
        summary = json.load(f)
    return records, wall, summary["peak_memory_mib"], summary["peak_memory_kind"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "multi30k-de-en-demo.sh"))
    parser.add_argument("--variant", action="append", required=True,
                        help="NAME=\"PRESET [fairseq flags]\"; the first is the baseline of the ratios")
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--skip-updates", type=int, default=10)
    parser.add_argument("--log-interval", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--markdown", help="'-' for stdout")
    args = parser.parse_args()

    variants = []
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        words = shlex.split(rest)
        if not name or not words:
            parser.error(f"--variant {spec!r}: expected NAME=\"PRESET [flags]\"")
        variants.append((name, words[0], words[1:]))

    results = {name: {"tokens_per_s": [], "wall_s": [], "peak_memory_mib": []} for name, _, _ in variants}
    memory_kinds = set()
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, preset, flags in variants:
                print(f"[bench_train] round {round_ + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
                records, wall, peak, memory_kind = run_variant(args.config, preset, flags, args.updates, args.log_interval,
                                                  os.path.join(tmp, f"{name}-{round_}"))
                wps = [w for w, u in records if u > args.skip_updates]
                if not wps:
                    sys.exit("bench_train: no train_inner records after --skip-updates; raise --updates")
                results[name]["tokens_per_s"].append(statistics.median(wps))
                results[name]["wall_s"].append(round(wall, 1))
                results[name]["peak_memory_mib"].append(peak)
                memory_kinds.add(memory_kind)
    base = statistics.median(results[variants[0][0]]["tokens_per_s"])
    base_mem = max(results[variants[0][0]]["peak_memory_mib"])
    rows = []
    for name, preset, flags in variants:
        r = results[name]
        tps = statistics.median(r["tokens_per_s"])
        rows.append({"variant": name, "preset": preset, "flags": flags, **r,
                     "median_tokens_per_s": round(tps, 1), "throughput_ratio": round(tps / base, 3),
                     "step_time_ratio": round(base / tps, 3),
                     "peak_memory_ratio": round(max(r["peak_memory_mib"]) / base_mem, 3)})
    report = {"benchmark": "bench_train", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "config": os.path.relpath(args.config, REPO), "updates": args.updates,
              "skip_updates": args.skip_updates, "rounds": args.rounds,
              "commit": commit(), "peak_memory": sorted(memory_kinds),
              "variants": rows}
    lines = [f"{report['config']}, {args.updates} updates per run (first {args.skip_updates} not timed), "
             f"{args.rounds} alternating rounds, commit {report['commit']}, {report['date']}.", "",
             f"Peak memory: {' / '.join(sorted(memory_kinds))}.", "",
             "| variant | tokens/s (median; per round) | step-time ratio | peak memory MiB | memory ratio |",
             "|---|---|---:|---:|---:|"]
    for row in rows:
        per_round = ", ".join(f"{x:.0f}" for x in row["tokens_per_s"])
        lines.append(f"| {row['variant']} | {row['median_tokens_per_s']:.0f} ({per_round}) | "
                     f"{row['step_time_ratio']:.3f} | {max(row['peak_memory_mib']):.0f} | {row['peak_memory_ratio']:.3f} |")
    write_outputs(report, args.json, args.markdown, "\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
