#!/usr/bin/env python
"""Average the model parameters of several fairseq checkpoints (as fairseq's own
scripts/average_checkpoints.py, which the pip package does not ship).

  skd-fairseq-average-checkpoints --inputs A.pt B.pt ... --output AVG.pt
  skd-fairseq-average-checkpoints --run-dir DIR --last N --output AVG.pt

The output keeps everything but the model weights from the last input. With --run-dir,
the inputs are the run's last N update checkpoints (checkpoint_E_U.pt, from
--save-interval-updates) or, when it has none, its last N epoch checkpoints
(checkpointE.pt).
"""

import argparse
import collections
import os
import re
import sys

import torch

import skd_fairseq.checkpoints


def average(paths):
    skd_fairseq.checkpoints.allow_fairseq_checkpoints()
    sums, state = None, None
    for path in paths:
        state = torch.load(path, map_location="cpu")
        model = state["model"]
        if sums is None:
            sums = collections.OrderedDict((k, v.double().clone()) for k, v in model.items())
        else:
            if model.keys() != sums.keys():
                raise SystemExit(f"{path} holds other parameters than {paths[0]}")
            for k, v in model.items():
                sums[k] += v.double()
    state["model"] = collections.OrderedDict((k, (v / len(paths)).to(state["model"][k].dtype)) for k, v in sums.items())
    return state


def last_checkpoints(run_dir, n):
    """The run's last ``n`` update checkpoints, else its last ``n`` epoch checkpoints, oldest first."""
    names = os.listdir(run_dir)
    by_update = sorted(
        (int(m.group(2)), name) for name in names if (m := re.fullmatch(r"checkpoint_(\d+)_(\d+)\.pt", name))
    )
    found = by_update or sorted(
        (int(m.group(1)), name) for name in names if (m := re.fullmatch(r"checkpoint(\d+)\.pt", name))
    )
    if len(found) < n:
        raise ValueError(
            f"averaging the last {n} needs that many update or epoch checkpoints in {run_dir}, found {len(found)}"
        )
    return [os.path.join(run_dir, name) for _, name in found[-n:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+")
    parser.add_argument("--run-dir")
    parser.add_argument("--last", type=int)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if bool(args.inputs) == bool(args.run_dir) or bool(args.run_dir) != bool(args.last):
        parser.error("give --inputs, or --run-dir with --last N")
    try:
        inputs = args.inputs or last_checkpoints(args.run_dir, args.last)
    except ValueError as err:
        sys.exit(f"average_checkpoints: {err}")
    print("averaging " + " ".join(inputs))
    torch.save(average(inputs), args.output)


if __name__ == "__main__":
    main()
