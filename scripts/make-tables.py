#!/usr/bin/env python
"""Turn result files (scripts/evaluate-translation.sh, scripts/evaluate-lm.sh) into paper-style tables.

  make-tables.py RESULT.json [...] [--out TABLE.md] [--flags] [--baseline NAME]
                 [--significance] [--plot CURVES.png]

Rows are methods, columns are benchmarks (dataset, pair, split); each cell is the
mean +- standard deviation over seeds, with the number of seeds. Translation results
give BLEU and chrF (with their sacrebleu signatures), language-model results
perplexity. Options:

  --flags          a column with each method's criterion preset and extra flags (sweeps)
  --significance   paired bootstrap resampling (sacrebleu, 1000 resamples) of each method
                   against --baseline on BLEU, seed by seed (baseline seed s vs method seed s)
  --plot FILE      validation perplexity against updates from the runs' train.log files,
                   one curve per method (mean over seeds), as a PNG
  --cost           a table of training cost per method (fairseq's wall time, peak memory,
                   target tokens/s; means over seeds) and its ratio to --baseline's
"""

import argparse
import collections
import json
import os
import re
import statistics
import sys


def load(paths):
    results = []
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        training = result.get("training", {})
        result["method"] = training.get("method") or training.get("preset", "unknown")
        result["settings"] = " ".join(filter(None, [training.get("preset"), training.get("extra_flags")]))
        result["seed"] = training.get("seed")
        result["run_dir"] = os.path.dirname(os.path.abspath(path))
        result.setdefault("pair", "")
        results.append(result)
    return results


def cell(values, digits=2):
    if not values:
        return "-"
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def benchmark_name(column):
    return " ".join(filter(None, column))


def table(results, metrics, show_flags):
    """One Markdown table: rows methods, columns (benchmark x metric)."""
    columns = sorted({(r["dataset"], r["pair"], r["split"]) for r in results})
    methods = list(dict.fromkeys(r["method"] for r in results))
    settings = {r["method"]: r["settings"] for r in results}
    by = collections.defaultdict(list)
    for r in results:
        by[(r["method"], r["dataset"], r["pair"], r["split"])].append(r)
    header = ["method"] + (["settings"] if show_flags else [])
    header += [f"{benchmark_name(c)}: {label}" for label, _, _ in metrics for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        row = [m] + ([f"`{settings[m]}`"] if show_flags else [])
        for _, key, digits in metrics:
            row += [cell([x["metrics"][key] for x in by[(m, *c)]], digits) for c in columns]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def cost_table(results, baseline):
    """Training cost per method from the runs' train.json summaries, relative to the baseline."""
    by = collections.defaultdict(list)
    for r in results:
        by[r["method"]].append(r.get("training", {}))

    def mean_of(method, key):
        values = [t[key] for t in by.get(method, []) if t.get(key) is not None]
        return statistics.mean(values) if values else None

    def ratio(method, key):
        value, base = mean_of(method, key), mean_of(baseline, key)
        return f"{value / base:.3f}" if value is not None and base else "-"

    def plain(value, digits):
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [f"Training cost (means over seeds; ratios to {baseline}):", "",
             "| method | train wall s | × | peak memory MiB | × | target tokens/s | × |", "|---|---|---|---|---|---|---|"]
    for m in by:
        lines.append(
            f"| {m} | {plain(mean_of(m, 'fairseq_wall_s'), 0)} | {ratio(m, 'fairseq_wall_s')} "
            f"| {plain(mean_of(m, 'peak_rss_mib'), 0)} | {ratio(m, 'peak_rss_mib')} "
            f"| {plain(mean_of(m, 'tokens_per_s'), 0)} | {ratio(m, 'tokens_per_s')} |"
        )
    return lines


def hypotheses(result):
    with open(os.path.join(result["run_dir"], result["hypotheses"]), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def references(result):
    with open(os.path.join(result["run_dir"], result["references"]), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def significance(results, baseline):
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    lines = [f"Paired bootstrap resampling against `{baseline}` (sacrebleu, BLEU, 1000 resamples), "
             "seed by seed: the method's BLEU, its 95 % confidence interval, and p.", ""]
    lines += ["| benchmark | method | seed | baseline BLEU | method BLEU (± 95 % CI) | p |", "|---|---|---:|---:|---:|---:|"]
    index = {(r["method"], r["dataset"], r["pair"], r["split"], r["seed"]): r for r in results}
    signature = None
    for key, r in sorted(index.items(), key=lambda kv: (kv[0][1:4], kv[0][0], str(kv[0][4]))):
        method, *column, seed = key
        base = index.get((baseline, *column, seed))
        if method == baseline or base is None:
            continue
        refs = references(r)
        test = PairedTest([(baseline, hypotheses(base)), (method, hypotheses(r))], {"BLEU": BLEU()},
                          [refs], test_type="bs", n_samples=1000)
        signatures, scores = test()
        signature = signatures["BLEU"]
        b, m = scores["BLEU"]
        lines.append(f"| {benchmark_name(column)} | {method} | {seed} | {b.score:.2f} | "
                     f"{m.score:.2f} (± {m.ci:.2f}) | {m.p_value:.4f} |")
    if signature is None:
        return []
    return lines + ["", f"bootstrap signature: `{signature}`"]


VALID = re.compile(r"\| valid \| epoch \d+ \| valid on '[^']+' subset \|.*?\| ppl ([0-9.]+) .*?\| num_updates (\d+)")


def validation_curve(run_dir):
    points = {}
    path = os.path.join(run_dir, "train.log")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                m = VALID.search(line)
                if m:
                    points[int(m.group(2))] = float(m.group(1))
    return points


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = sorted({(r["dataset"], r["pair"]) for r in results})
    fig, axes = plt.subplots(1, len(columns), figsize=(6 * len(columns), 4), squeeze=False)
    for ax, column in zip(axes[0], columns):
        runs = {}
        for r in results:
            if (r["dataset"], r["pair"]) == column:
                runs[r["run_dir"]] = r["method"]  # one curve per run, whatever split was scored
        by_method = collections.defaultdict(list)
        for run_dir, method in runs.items():
            by_method[method].append(validation_curve(run_dir))
        for method, curves in by_method.items():
            updates = sorted(set.intersection(*(set(c) for c in curves)))
            if updates:
                ax.plot(updates, [statistics.mean(c[u] for c in curves) for u in updates], marker="o",
                        label=f"{method} (n={len(curves)})")
        ax.set_title(f"{benchmark_name(column)}: validation")
        ax.set_xlabel("updates")
        ax.set_ylabel("validation perplexity (mean over seeds)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", help="write the Markdown here as well as to stdout")
    parser.add_argument("--flags", action="store_true")
    parser.add_argument("--baseline", default="baseline")
    parser.add_argument("--significance", action="store_true")
    parser.add_argument("--plot")
    parser.add_argument("--cost", action="store_true")
    args = parser.parse_args()

    results = load(args.results)
    translation = [r for r in results if "bleu" in r["metrics"]]
    lm = [r for r in results if "ppl" in r["metrics"]]
    lines = []
    if translation:
        lines += table(translation, [("BLEU", "bleu", 2), ("chrF", "chrf", 2)], args.flags)
        signatures = sorted({r["metrics"]["bleu_signature"] for r in translation}
                            | {r["metrics"]["chrf_signature"] for r in translation})
        lines += ["", "sacrebleu signatures: " + "; ".join(f"`{s}`" for s in signatures)]
        if args.significance:
            lines += [""] + significance(translation, args.baseline)
    if lm:
        lines += [""] if lines else []
        lines += table(lm, [("perplexity", "ppl", 2)], args.flags)
    if args.cost:
        lines += ["", *cost_table(results, args.baseline)]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
