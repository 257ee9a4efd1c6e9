#!/usr/bin/env python
"""The neighbour-table refresh split across distributed ranks: time per rank against one process.

  bench_refresh_ranks.py --vocab 32000 --dim 512 --topk 8 --ranks 1 2 --json out.json --markdown -

For each world size W, W gloo processes (one thread each, on this machine's CPU) build the whole
table with ``skd_fairseq.neighbours.neighbour_table(world=W)``, as the criterion does at a
refresh: each searches 1/W of the rows and one all-gather assembles the table. Reported per W:
the slowest rank's wall time for the refresh, its search and its all-gather, and whether every
rank's table equals the one process's. ``--adaptive C1,C2`` searches an adaptive softmax's
clusters in their own spaces instead (tail i at dimension D / 4^i, as transformer_lm_wiki103).
With W ranks on fewer free cores than W the ranks share cores and the split gains less.
"""

import argparse
import os
import sys
import tempfile
import time

import torch
import torch.multiprocessing as mp

from skd_experiments.markdown import markdown_table
from skd_experiments.reporting import commit, today, write_outputs


def spaces_for(vocab, dim, cutoff, seed=0):
    from skd_fairseq.neighbours import Space

    g = torch.Generator().manual_seed(seed)
    if not cutoff:
        return [Space(torch.randn(vocab, dim, generator=g))]
    bounds = [0] + list(cutoff) + [vocab]
    spaces = [Space(torch.randn(bounds[1], dim, generator=g), 0, None, "head")]
    for i in range(1, len(bounds) - 1):
        d = max(1, dim // 4**i)
        proj = torch.randn(d, dim, generator=g) / dim**0.5
        spaces.append(
            Space(torch.randn(bounds[i + 1] - bounds[i], d, generator=g), bounds[i], proj @ proj.t(), f"tail {i}")
        )
    return spaces


def run_rank(rank, world, init, args, out):
    from skd_fairseq import neighbours

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=init, world_size=world, rank=rank)
    try:
        spaces = spaces_for(args.vocab, args.dim, args.adaptive)
        exclude = torch.arange(4)
        gather_s = []
        original = neighbours.gather_row_blocks

        def timed_gather(*a, **kw):
            start = time.perf_counter()
            result = original(*a, **kw)
            gather_s.append(time.perf_counter() - start)
            return result

        neighbours.gather_row_blocks = timed_gather
        torch.distributed.barrier()
        start = time.perf_counter()
        table = neighbours.neighbour_table(spaces, args.topk, args.similarity, exclude, world=world, rank=rank)
        total = time.perf_counter() - start
        torch.save({"table": table, "total_s": total, "gather_s": sum(gather_s)}, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--topk", type=int, default=8)
    parser.add_argument("--similarity", default="cosine", choices=["cosine", "l2", "dot"])
    parser.add_argument("--adaptive", help="cutoffs C1,C2,...: search an adaptive softmax's clusters")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="world sizes, the first is the reference")
    parser.add_argument("--json")
    parser.add_argument("--markdown", help="'-' for stdout")
    args = parser.parse_args(argv)
    args.adaptive = [int(c) for c in args.adaptive.split(",")] if args.adaptive else None
    if any(w < 1 for w in args.ranks):
        parser.error("--ranks must be positive")
    return args


def world_size_rows(args):
    """One row per world size: its slowest rank's times, and whether every rank's table is the first
    world size's; its speed-up is against the first."""
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for world in args.ranks:
            print(f"[bench_refresh_ranks] {world} rank(s)", file=sys.stderr, flush=True)
            out = os.path.join(tmp, f"w{world}")
            mp.start_processes(
                run_rank, args=(world, f"file://{out}.rendezvous", args, out), nprocs=world, start_method="spawn"
            )
            results = [torch.load(f"{out}.{rank}") for rank in range(world)]
            reference = results[0]["table"] if reference is None else reference
            slowest = max(results, key=lambda r: r["total_s"])
            # Kept to the microsecond: a tiny table refreshes in milliseconds, and the speed-up is a ratio.
            rows.append(
                {
                    "ranks": world,
                    "refresh_s": round(slowest["total_s"], 6),
                    "all_gather_s": round(slowest["gather_s"], 6),
                    "search_s": round(slowest["total_s"] - slowest["gather_s"], 6),
                    "tables_equal_to_first": all(torch.equal(r["table"], reference) for r in results),
                }
            )
    base = rows[0]["refresh_s"]
    for row in rows:
        row["speedup"] = round(base / row["refresh_s"], 2)
    return rows


def markdown(report):
    lines = [
        f"{report['shape']}; gloo ranks, one thread each, on {report['cpus']} CPU cores; commit {report['commit']}, "
        f"{report['date']}.",
        "",
    ]
    header = ["ranks", "refresh s (slowest rank)", "of which search", "of which all-gather", "speed-up", "same table"]
    lines += markdown_table(
        header,
        [
            [
                row["ranks"],
                f"{row['refresh_s']:.2f}",
                f"{row['search_s']:.2f}",
                f"{row['all_gather_s']:.3f}",
                f"{row['speedup']:.2f}",
                "yes" if row["tables_equal_to_first"] else "NO",
            ]
            for row in report["rows"]
        ],
        align="rrrrrl",
    )
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    rows = world_size_rows(args)
    shape = f"V {args.vocab}, D {args.dim}, k {args.topk}, {args.similarity}" + (
        f", adaptive softmax {args.adaptive} (clusters in their own spaces)" if args.adaptive else ""
    )
    report = {
        "benchmark": "bench_refresh_ranks",
        "date": today(),
        "commit": commit(),
        "shape": shape,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    write_outputs(report, args.json, args.markdown, markdown(report))
    if not all(row["tables_equal_to_first"] for row in rows):
        sys.exit("bench_refresh_ranks: the ranks' tables differ from one process's")


if __name__ == "__main__":
    main()
