#!/usr/bin/env python
"""Turn result files (scripts/evaluate-*.sh) into a paper-style Markdown table.

  make-tables.py RESULT.json [RESULT.json ...] [--out TABLE.md]

Rows are methods (criterion presets), columns are benchmarks (dataset, pair, split);
each cell is mean +- standard deviation over seeds, with the number of seeds. The
sacrebleu signatures of the scores are listed under the table.
"""

import argparse
import collections
import json
import statistics
import sys


def load(paths):
    results = []
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        training = result.get("training", {})
        result["method"] = training.get("preset", "unknown")
        result["seed"] = training.get("seed")
        result["path"] = path
        results.append(result)
    return results


def cell(values, digits=2):
    if not values:
        return "-"
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def translation_table(results):
    columns = sorted({(r["dataset"], r["pair"], r["split"]) for r in results})
    methods = list(dict.fromkeys(r["method"] for r in results))
    by = collections.defaultdict(list)
    for r in results:
        by[(r["method"], r["dataset"], r["pair"], r["split"])].append(r)
    header = ["method"] + [f"{d} {p} {s}: BLEU" for d, p, s in columns] + [f"{d} {p} {s}: chrF" for d, p, s in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        bleu = [cell([x["metrics"]["bleu"] for x in by[(m, *c)]]) for c in columns]
        chrf = [cell([x["metrics"]["chrf"] for x in by[(m, *c)]]) for c in columns]
        lines.append("| " + " | ".join([m] + bleu + chrf) + " |")
    signatures = sorted({r["metrics"]["bleu_signature"] for r in results} | {r["metrics"]["chrf_signature"] for r in results})
    lines += ["", "sacrebleu signatures: " + "; ".join(f"`{s}`" for s in signatures)]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", help="write the Markdown here as well as to stdout")
    args = parser.parse_args()
    text = translation_table(load(args.results))
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
