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
skd_experiments/run_and_measure.py). Ratios are to the first variant, measured in the same run.

--common FLAGS go to every variant (e.g. --data DIR --decoder-layers 4). --amortise
STEADY=EVERY names two variants that differ only in the neighbour refresh: STEADY at its
table period R (--refresh, default 50: the first update, which builds the table, is not
timed) and EVERY with --skd-neighbour-refresh 1 (a refresh at every update); the report adds
STEADY's step time with the refresh amortised over R updates, t_STEADY + (t_EVERY - t_STEADY) / R,
and its memory is the larger of the two peaks (the worst step is a refresh step).

--target NAME=TIME,MEMORY judges a variant against the first: PASS when its step-time ratio is
at most TIME and its peak-memory ratio at most MEMORY, else FAIL, one line each (issue 45: the
cached teacher, --target "word-kd-cached=1.10,1.05" beside --variant word-kd-cached="word-kd
--teacher-cache DIR").

The WikiText-103 model (benchmarks/README.md): synthetic_lm_data.py builds data with its
267,744-word dictionary, then
  bench_train.py --config configs/wikitext103.sh --updates 4 --skip-updates 1 --log-interval 1 \
      --common "--data DIR/bin --update-freq 1 --decoder-layers 4" \
      --variant baseline=baseline --variant skd-cluster=skd-neighbours \
      --variant skd-cluster-R1="skd-neighbours --skd-neighbour-refresh 1" \
      --variant skd-any="skd-neighbours --skd-adaptive-candidates any" \
      --amortise skd-cluster=skd-cluster-R1
"""

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from skd_experiments import fairseq_log
from skd_experiments.markdown import markdown_table
from skd_experiments.reporting import commit, today, write_outputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_variant(config, preset, flags, updates, log_interval, save_dir):
    cmd = [
        "bash",
        os.path.join(REPO, "scripts", "train.sh"),
        config,
        "--criterion-preset",
        preset,
        "--save-dir",
        save_dir,
        "--max-update",
        str(updates),
        "--log-interval",
        str(log_interval),
        "--disable-validation",
        "--no-save",
        *flags,
    ]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"bench_train: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    records = [
        (r.get("wps"), int(r.get("num_updates")))
        for r in fairseq_log.records(proc.stdout.splitlines())
        if r.kind == "train_inner" and "wps" in r.values and "num_updates" in r.values
    ]
    with open(os.path.join(save_dir, "train.json")) as f:
        summary = json.load(f)
    return records, wall, summary["peak_memory_mib"], summary["peak_memory_kind"]


def checkout_state():
    """(commit, hash of the uncommitted changes): what a run started now would import."""
    diff = subprocess.run(["git", "-C", REPO, "diff", "HEAD"], capture_output=True, text=True).stdout
    return commit(), hashlib.sha256(diff.encode()).hexdigest()[:16]


def parse_targets(parser, specs, names):
    """[(variant, step-time limit, memory limit)] from --target NAME=TIME,MEMORY."""
    targets = []
    for spec in specs:
        name, _, limits = spec.partition("=")
        try:
            time_limit, memory_limit = (float(x) for x in limits.split(","))
        except ValueError:
            parser.error(f"--target {spec!r}: expected NAME=TIME,MEMORY, e.g. word-kd-cached=1.10,1.05")
        if name not in names:
            parser.error(f"--target {spec!r}: {name!r} is not one of the variants {names}")
        targets.append((name, time_limit, memory_limit))
    return targets


def judge_targets(targets, by_name, baseline):
    """PASS or FAIL of each target's two ratios against the first variant."""
    checks = []
    for name, time_limit, memory_limit in targets:
        for what, key, limit in (
            ("step-time", "step_time_ratio", time_limit),
            ("peak-memory", "peak_memory_ratio", memory_limit),
        ):
            value = by_name[name][key]
            checks.append(
                {
                    "target": f"{name}: {what} ratio to {baseline} <= {limit}",
                    "value": value,
                    "result": "PASS" if value <= limit else "FAIL",
                }
            )
    return checks


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "multi30k-de-en-demo.sh"))
    parser.add_argument(
        "--variant",
        action="append",
        required=True,
        help='NAME="PRESET [fairseq flags]"; the first is the baseline of the ratios',
    )
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--skip-updates", type=int, default=10)
    parser.add_argument("--log-interval", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--common", default="", help="fairseq flags given to every variant (after its own)")
    parser.add_argument(
        "--amortise",
        action="append",
        default=[],
        help="STEADY=EVERY: STEADY's step time with EVERY's refresh cost amortised over --refresh",
    )
    parser.add_argument("--refresh", type=int, default=50, help="the table period R of --amortise")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        help="NAME=TIME,MEMORY: PASS when variant NAME's step-time and peak-memory ratios are at most these",
    )
    parser.add_argument("--json")
    parser.add_argument("--markdown", help="'-' for stdout")
    return parser


def parse_variants(parser, specs):
    """[(name, preset, fairseq flags)] from --variant NAME="PRESET [flags]"."""
    variants = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        words = shlex.split(rest)
        if not name or not words:
            parser.error(f'--variant {spec!r}: expected NAME="PRESET [flags]"')
        variants.append((name, words[0], words[1:]))
    return variants


def parse_amortised(parser, specs, names):
    """[(steady, every)] from --amortise STEADY=EVERY."""
    amortised = []
    for spec in specs:
        steady, _, every = spec.partition("=")
        if steady not in names or every not in names:
            parser.error(f"--amortise {spec!r}: expected STEADY=EVERY, two of the variants {names}")
        amortised.append((steady, every))
    return amortised


def run_rounds(args, variants):
    """({variant: its runs' median tokens/s, wall times and peak memory}, the kinds of peak memory
    measured), the variants alternating round by round."""
    results = {name: {"tokens_per_s": [], "wall_s": [], "peak_memory_mib": []} for name, _, _ in variants}
    memory_kinds = set()
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, preset, flags in variants:
                print(f"[bench_train] round {round_ + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
                records, wall, peak, memory_kind = run_variant(
                    args.config,
                    preset,
                    flags + shlex.split(args.common),
                    args.updates,
                    args.log_interval,
                    os.path.join(tmp, f"{name}-{round_}"),
                )
                wps = [w for w, u in records if u > args.skip_updates]
                if not wps:
                    sys.exit("bench_train: no train_inner records after --skip-updates; raise --updates")
                results[name]["tokens_per_s"].append(statistics.median(wps))
                results[name]["wall_s"].append(round(wall, 1))
                results[name]["peak_memory_mib"].append(peak)
                memory_kinds.add(memory_kind)
    return results, memory_kinds


def variant_rows(variants, results):
    """The report's row of each variant, its ratios to the first's."""
    base = statistics.median(results[variants[0][0]]["tokens_per_s"])
    base_mem = max(results[variants[0][0]]["peak_memory_mib"])
    rows = []
    for name, preset, flags in variants:
        r = results[name]
        tps = statistics.median(r["tokens_per_s"])
        rows.append(
            {
                "variant": name,
                "preset": preset,
                "flags": flags,
                **r,
                "median_tokens_per_s": round(tps, 1),
                "throughput_ratio": round(tps / base, 3),
                "step_time_ratio": round(base / tps, 3),
                "peak_memory_ratio": round(max(r["peak_memory_mib"]) / base_mem, 3),
            }
        )
    return rows


def amortised_row(steady, every, by_name, refresh):
    """STEADY's row with EVERY's refresh cost amortised over R = refresh updates; its memory is the
    larger of the two peaks (the worst step is a refresh step)."""
    t_steady, t_every = by_name[steady]["step_time_ratio"], by_name[every]["step_time_ratio"]
    return {
        "variant": f"{steady}, refresh amortised (R = {refresh})",
        "amortised_from": [steady, every],
        "step_time_ratio": round(t_steady + (t_every - t_steady) / refresh, 3),
        "peak_memory_mib": [max(by_name[steady]["peak_memory_mib"] + by_name[every]["peak_memory_mib"])],
        "peak_memory_ratio": max(by_name[steady]["peak_memory_ratio"], by_name[every]["peak_memory_ratio"]),
    }


def markdown(args, report, moved):
    """The summary: the settings, one table row per variant, the targets; moved says the checkout changed."""
    common = f", every variant with `{args.common}`" if args.common else ""
    lines = [
        f"{report['config']}, {args.updates} updates per run (first {args.skip_updates} not timed), "
        f"{args.rounds} alternating rounds{common}, commit {report['commit']}{moved}, {report['date']}.",
        "",
        f"Peak memory: {' / '.join(report['peak_memory'])}.",
        "",
    ]
    table = []
    for row in report["variants"]:
        if "amortised_from" in row:
            speed, peak = "", row["peak_memory_mib"][0]
        else:
            per_round = ", ".join(f"{x:.0f}" for x in row["tokens_per_s"])
            speed, peak = f"{row['median_tokens_per_s']:.0f} ({per_round})", max(row["peak_memory_mib"])
        table.append(
            [row["variant"], speed, f"{row['step_time_ratio']:.3f}", f"{peak:.0f}", f"{row['peak_memory_ratio']:.3f}"]
        )
    header = ["variant", "tokens/s (median; per round)", "step-time ratio", "peak memory MiB", "memory ratio"]
    lines += markdown_table(header, table, align="llrrr")
    if report["targets"]:
        lines += ["", "Targets:", ""] + [
            f"- {c['result']}: {c['target']} (measured {c['value']:.3f})" for c in report["targets"]
        ]
    return "\n".join(lines) + "\n"


def main():
    parser = build_parser()
    args = parser.parse_args()
    variants = parse_variants(parser, args.variant)
    names = [name for name, _, _ in variants]
    amortised = parse_amortised(parser, args.amortise, names)
    if args.refresh < 1:
        parser.error(f"--refresh must be >= 1, got {args.refresh}")
    targets = parse_targets(parser, args.target, names)

    # Each run imports the plugin from this checkout when it starts: the report names the commit at
    # the start, and says so when the checkout changed before the last run (then later runs measured
    # other code).
    started = checkout_state()
    results, memory_kinds = run_rounds(args, variants)
    rows = variant_rows(variants, results)
    by_name = {row["variant"]: row for row in rows}
    rows += [amortised_row(steady, every, by_name, args.refresh) for steady, every in amortised]
    checks = judge_targets(targets, by_name, variants[0][0])
    report = {
        "benchmark": "bench_train",
        "date": today(),
        "config": os.path.relpath(args.config, REPO),
        "updates": args.updates,
        "skip_updates": args.skip_updates,
        "rounds": args.rounds,
        "common_flags": shlex.split(args.common),
        "refresh": args.refresh if amortised else None,
        "commit": started[0],
        "peak_memory": sorted(memory_kinds),
        "variants": rows,
        "targets": checks,
    }
    moved, ended = "", checkout_state()
    if ended != started:
        report["commit_at_end"] = ended[0]
        moved = f" (the checkout changed during the runs: {ended[0]} at the end)"
        print(f"[bench_train] warning{moved}: later runs measured other code", file=sys.stderr)
    for c in checks:
        print(f"[bench_train] {c['result']}: {c['target']} (measured {c['value']:.3f})", file=sys.stderr)
    write_outputs(report, args.json, args.markdown, markdown(args, report, moved))


if __name__ == "__main__":
    main()
