#!/usr/bin/env python
"""Average the model parameters of several fairseq checkpoints (as fairseq's own
scripts/average_checkpoints.py, which the pip package does not ship).

  average_checkpoints.py --inputs A.pt B.pt ... --output AVG.pt

The output keeps everything but the model weights from the last input.
"""

import argparse
import collections

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
    state["model"] = collections.OrderedDict(
        (k, (v / len(paths)).to(state["model"][k].dtype)) for k, v in sums.items()
    )
    return state


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.save(average(args.inputs), args.output)


if __name__ == "__main__":
    main()
