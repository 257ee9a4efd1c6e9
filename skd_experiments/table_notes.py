"""The lines scripts/reproduce.sh writes above a results table, from the table's result files.

  python -m skd_experiments.table_notes commits RESULT.json [...]
  python -m skd_experiments.table_notes conditions --cuda 0|1 RESULT.json [...]
  python -m skd_experiments.table_notes teacher RESULT.json CONFIG

commits: the commits the runs were trained at; conditions: the hardware (the GPU, or the
CPU threads each run recorded) and the summed training time; teacher: the KD table's
teacher, its scores and cost.
"""

import argparse
import collections
import json
import os

from skd_experiments.results import run_fields


def read(path):
    with open(path) as f:
        return json.load(f)


def commits(paths):
    found = set()
    for path in paths:
        training = read(path).get("training", {})
        found.update(training.get("commits") or [training.get("commit") or "unknown"])
    return ", ".join(sorted(found))


def conditions(paths, cuda):
    """Where the runs were trained and how long they took, in two sentences."""
    # One run may have several result files (beam and greedy decoding): count it once.
    runs = {os.path.dirname(os.path.realpath(p)): p for p in paths}
    trainings = [read(p).get("training", {}) for p in runs.values()]
    if cuda:  # scripts/device.sh's probe: torch sees a GPU
        import torch

        hardware = f"GPU: {torch.cuda.get_device_name(0)}."
    else:  # the threads each run was trained with, as its train.json recorded them
        runs = collections.Counter(t.get("omp_num_threads", "?") for t in trainings)
        said = {
            "?": "not recorded (trained before run_and_measure.py kept it)",
            None: "OMP_NUM_THREADS unset (torch's default, one per core)",
        }
        hardware = (
            "CPU only; threads per run: "
            + "; ".join(
                f"{said.get(k, f'OMP_NUM_THREADS={k}')} ({n} run{'s' * (n > 1)})"
                for k, n in sorted(runs.items(), key=str)
            )
            + "."
        )
    # fairseq_wall_s sums the training time of every invocation (run_and_measure), not the downtime between them.
    walls = [t.get("fairseq_wall_s") for t in trainings]
    known = [w for w in walls if w is not None]
    time = (
        f"Training time of the {len(walls)} runs, summed: {sum(known) / 3600:.1f} h"
        + (f" ({len(walls) - len(known)} runs did not record it)" if len(known) < len(walls) else "")
        + " (evaluation not included)."
    )
    return f"{hardware}\n{time}"


def teacher(path, config):
    result = read(path)
    result = {**run_fields(result.get("training", {})), **result}
    m = result["metrics"]
    return (
        f"Teacher (`{config}`, seed 1, trained once and shared by every row): test BLEU {m['bleu']:.2f}, "
        f"chrF {m['chrf']:.2f}; training {result['wall_time_s'] or 0:,.0f} s, peak memory "
        f"{result['peak_memory_mib'] or 0:,.0f} MiB ({result['peak_memory_kind']}; not included in the rows' "
        "cost).\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("commits").add_argument("results", nargs="+")
    p = sub.add_parser("conditions")
    p.add_argument("--cuda", choices=("0", "1"), required=True, help="1 when the runs were trained on a GPU")
    p.add_argument("results", nargs="+")
    p = sub.add_parser("teacher")
    p.add_argument("result")
    p.add_argument("config")
    args = parser.parse_args()
    if args.command == "commits":
        print(commits(args.results))
    elif args.command == "conditions":
        print(conditions(args.results, args.cuda == "1"))
    else:
        print(teacher(args.result, args.config))


if __name__ == "__main__":
    main()
