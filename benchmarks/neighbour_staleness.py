#!/usr/bin/env python
"""How fast the embedding neighbours move during training: the cost of a stale table.

  neighbour_staleness.py --checkpoints RUN_DIR --dictionary DICT.txt [--topk 8] [--gaps 25 50 100 200]

Reads the update checkpoints of a run (checkpoint_E_U.pt, from
--save-interval-updates N --keep-interval-updates -1), computes the neighbour table
of the whole vocabulary at each, and reports, for each gap G, the mean overlap
|N_u(t) & N_{u+G}(t)| / k: the fraction of a table built at update u that is still
right G updates later. Tokens are weighted by their training frequency (the
dictionary's counts), as the criterion meets them. A table refreshed every R updates
is on average R/2 updates old.
"""

import argparse
import json
import os
import re
import statistics
import sys

import torch

from skd_experiments.markdown import markdown_table


def load_embedding(path):
    import skd_fairseq.checkpoints

    skd_fairseq.checkpoints.allow_fairseq_checkpoints()
    model = torch.load(path, map_location="cpu")["model"]
    for key in ("decoder.output_projection.weight", "decoder.embed_tokens.weight"):
        if key in model:
            return model[key].float()
    raise SystemExit(f"{path}: no decoder output projection in the checkpoint")


def checkpoints_by_update(run_dir):
    """{update: path} of the run's checkpoint_E_U.pt files."""
    found = {}
    for name in os.listdir(run_dir):
        match = re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", name)
        if match:
            found[int(match.group(1))] = os.path.join(run_dir, name)
    if len(found) < 2:
        raise SystemExit("need at least two update checkpoints (train with --save-interval-updates)")
    return found


def neighbour_tables(checkpoints, topk, similarity, exclude):
    """{update: the whole vocabulary's neighbour table at that update}."""
    from skd_fairseq.neighbours import embedding_topk

    tables = {}
    for u in sorted(checkpoints):
        weight = load_embedding(checkpoints[u])
        tables[u] = embedding_topk(weight, torch.arange(weight.size(0)), topk, similarity, exclude=exclude)
        print(f"[staleness] table at update {u}", file=sys.stderr, flush=True)
    return tables


def overlap(a, b, weights):
    """|a & b| / k of each token's neighbours, the mean weighted by the tokens' training counts."""
    same = (a.unsqueeze(2) == b.unsqueeze(1)).any(dim=2).sum(dim=1).double() / a.size(1)
    return float((same * weights).sum() / weights.sum())


def print_table(report):
    """The mean overlap at each gap, as a Markdown table on stdout."""
    rows = [
        [
            gap,
            len(entry["pairs"]),
            f"{entry['mean_overlap']:.3f}",
            ", ".join(f"{a}: {v:.2f}" for a, _, v in entry["pairs"]),
        ]
        for gap, entry in report["gaps"].items()
    ]
    print(
        "\n".join(
            markdown_table(["gap (updates)", "pairs", "mean overlap", "overlap by start update"], rows, align="rrrl")
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", required=True, help="run directory with checkpoint_E_U.pt files")
    parser.add_argument("--dictionary", required=True, help="the target dict.txt (for special symbols and counts)")
    parser.add_argument("--topk", type=int, default=8)
    parser.add_argument("--similarity", default="cosine", choices=["cosine", "l2", "dot"])
    parser.add_argument("--gaps", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    from fairseq.data import Dictionary

    from skd_fairseq.criterions.fairseq_access import excluded_token_ids

    dictionary = Dictionary.load(args.dictionary)
    exclude = excluded_token_ids(dictionary)
    weights = torch.tensor(dictionary.count, dtype=torch.float64)
    weights[exclude] = 0
    checkpoints = checkpoints_by_update(args.checkpoints)
    updates = sorted(checkpoints)
    tables = neighbour_tables(checkpoints, args.topk, args.similarity, exclude)
    report = {"checkpoints": args.checkpoints, "topk": args.topk, "similarity": args.similarity, "gaps": {}}
    for gap in args.gaps:
        pairs = [(u, u + gap) for u in updates if u + gap in tables]
        if pairs:
            values = [overlap(tables[a], tables[b], weights) for a, b in pairs]
            report["gaps"][gap] = {
                "pairs": [[a, b, round(v, 4)] for (a, b), v in zip(pairs, values)],
                "mean_overlap": round(statistics.mean(values), 4),
            }
    print_table(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
