#!/usr/bin/env python
"""Keep what a results table was computed from, small enough to commit beside it.

  skd-fairseq-archive-runs --out DIR RESULT.json [...]

For each run: its result file, train.json, the hypotheses it scored (a language model:
its per-sample scores), its validation perplexity file, and the per-epoch summaries of
its train.log (validation and training: the curves, skd_gold_q, skd_tau), into
DIR/METHOD/seedN/; the references once per benchmark into
DIR/references/. The copied result files point at the copies, so
``skd-fairseq-tables DIR/*/seed*/result.*.json --significance --plot ...`` rebuilds the
table, the significance tests and the curves without the checkpoints or the data.
"""

import argparse
import json
import os
import shutil
import sys

from skd_experiments import fairseq_log


def archive(result_path, out):
    with open(result_path) as f:
        result = json.load(f)
    # The paths in a result file are relative to the directory it physically lies in (a run dir
    # reached through a symlink, such as a sweep run adopted as a table's seed, has other parents).
    run_dir = os.path.dirname(os.path.realpath(result_path))
    training = result.get("training", {})
    method = result.get("method") or training.get("method") or training.get("preset") or "unknown"
    seed = result.get("seed", training.get("seed", "unknown"))
    dest = os.path.join(out, method, f"seed{seed}")
    os.makedirs(dest, exist_ok=True)
    for name in ("train.json", "valid-perplexity.json"):
        if os.path.exists(os.path.join(run_dir, name)):
            shutil.copy(os.path.join(run_dir, name), dest)
    log = os.path.join(run_dir, "train.log")
    if os.path.exists(log):  # the per-epoch records: what skd-fairseq-tables plots and reads
        with open(log) as f, open(os.path.join(dest, "train.log"), "w") as g:
            g.writelines(line for line in f if (r := fairseq_log.parse_line(line)) and r.kind in ("train", "valid"))
    for key in ("hypotheses", "scores", "references"):
        if key not in result:
            continue
        source = os.path.normpath(os.path.join(run_dir, result[key]))
        if key != "references":
            target = os.path.join(dest, os.path.basename(source))
        else:
            prefix = "-".join(filter(None, [result.get("dataset"), result.get("pair")]))
            name = os.path.basename(source)
            if prefix and not name.startswith(prefix + "-"):  # an archived reference already has it
                name = f"{prefix}-{name}"
            target = os.path.join(out, "references", name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(source, target)
        result[key] = os.path.relpath(target, dest)
    with open(os.path.join(dest, os.path.basename(result_path)), "w") as f:
        json.dump(result, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    for path in args.results:
        if not os.path.exists(path):
            sys.exit(f"archive_runs: {path} not found")
        archive(path, args.out)


if __name__ == "__main__":
    main()
