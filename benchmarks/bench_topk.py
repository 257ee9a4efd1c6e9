#!/usr/bin/env python
"""embedding_topk against the naive full-matrix top-k and against faiss, over vocabulary sizes.

  bench_topk.py --vocab 8000 32000 50000 250000 --dim 512 --topk 8 --chunk-sizes 256 1024 default \\
      --queries all --json out.json --markdown -

For each V: time to find the k nearest rows of every row (or of --queries N random
rows), peak memory, and exactness against a float64 brute force on a sample of rows.
Methods:
  embedding_topk   skd_fairseq.neighbours.embedding_topk at each chunk size
  naive            the full V x V fp32 similarity matrix, then topk (skipped when that
                   matrix exceeds --naive-limit-gib)
  faiss            faiss IndexFlatIP / IndexFlatL2 (exact search; CPU only; skipped when
                   faiss is not installed: pip install faiss-cpu)
Each measurement runs in a fresh process; its peak memory is that of one search after
the timed ones (skd_experiments/peak_memory.py: on CUDA torch.cuda.max_memory_allocated, on
the CPU the resident set's high-water mark above the resident set before the search).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from skd_experiments import peak_memory
from skd_experiments.markdown import markdown_table
from skd_experiments.peak_memory import PeakMemory


def make_embeddings(vocab, dim, device, dtype):
    g = torch.Generator().manual_seed(0)
    return torch.randn(vocab, dim, generator=g).to(device=device, dtype=dtype)


def naive_topk(embeddings, ids, k, similarity, exclude):
    from skd_fairseq.similarity import EmbeddingSimilarity

    sims = EmbeddingSimilarity(embeddings, similarity).against_all(
        torch.arange(embeddings.size(0), device=embeddings.device)
    )
    sims = sims[ids]
    sims[:, exclude] = float("-inf")
    sims[torch.arange(len(ids), device=sims.device), ids] = float("-inf")
    return sims.topk(k, dim=1).indices


def faiss_topk(embeddings, ids, k, similarity, exclude):
    import faiss
    import numpy as np

    x = embeddings.float().cpu().numpy()
    if similarity == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    index = faiss.IndexFlatL2(x.shape[1]) if similarity == "l2" else faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, found = index.search(x[ids.cpu().numpy()], k + 1 + len(exclude))
    found = torch.from_numpy(found)
    skip = (found == ids.cpu().unsqueeze(1)) | torch.isin(found, torch.tensor(exclude))
    order = skip.to(torch.uint8).sort(dim=1, stable=True).indices[:, :k]
    return found.gather(1, order)


def is_exact(embeddings, ids, found, k, similarity, exclude):
    """Exactness on a sample of the queries: the found rows' similarities equal the float64 top-k values."""
    n = len(ids)
    sample = torch.arange(0, n, max(1, n // 64))
    e = embeddings.double().cpu()
    if similarity == "cosine":
        e = e / e.norm(dim=1, keepdim=True)
    q = ids.cpu()[sample]
    sims = -torch.cdist(e[q], e).pow(2) if similarity == "l2" else e[q] @ e.t()
    sims[:, exclude] = float("-inf")
    sims[torch.arange(len(q)), q] = float("-inf")
    want = sims.topk(k, dim=1).values
    got = sims.gather(1, found.cpu()[sample])
    return bool(torch.allclose(got, want, rtol=0, atol=1e-4 * float(want.abs().max())))


def single(args):
    """One measurement, in this process; prints one JSON line."""
    from skd_fairseq.neighbours import embedding_topk

    device = torch.device(args.device)
    memory_unsupported = peak_memory.cpu_supported() if device.type == "cpu" else None
    if device.type == "cpu" and memory_unsupported is None:
        peak_memory.cpu_mode()
    torch.set_num_threads(args.threads or torch.get_num_threads())
    emb = make_embeddings(args.vocab, args.dim, device, {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype])
    exclude = [0, 1, 2, 3]
    n = args.vocab if args.queries == "all" else min(int(args.queries), args.vocab)
    ids = torch.randperm(args.vocab, generator=torch.Generator().manual_seed(1))[:n].to(device)
    chunk = None if args.chunk in ("default", "-") else int(args.chunk)
    run = {
        "embedding_topk": lambda: embedding_topk(
            emb, ids, args.topk, args.similarity, exclude=exclude, chunk_size=chunk
        ),
        "naive": lambda: naive_topk(emb, ids, args.topk, args.similarity, exclude),
        "faiss": lambda: faiss_topk(emb, ids, args.topk, args.similarity, exclude),
    }[args.method]
    run()  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = None
    if memory_unsupported is None:
        with PeakMemory(device) as used:
            run()
        peak = round(used.bytes / 2**20, 1)
    exact = is_exact(emb, ids, out, args.topk, args.similarity, exclude)
    print(
        json.dumps(
            {
                "method": args.method,
                "chunk": args.chunk,
                "vocab": args.vocab,
                "queries": n,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "peak_mib": peak,
                "exact": exact,
            }
        )
    )


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--vocab", type=int, nargs="+", default=[8000, 32000, 50000, 250000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--topk", type=int, default=8)
    parser.add_argument("--similarity", default="cosine", choices=["cosine", "l2", "dot"])
    parser.add_argument("--chunk-sizes", nargs="+", default=["256", "1024", "default"])
    parser.add_argument("--queries", default="all", help="'all' rows (a table refresh) or a number of rows")
    parser.add_argument("--methods", nargs="+", default=["embedding_topk", "naive", "faiss"])
    parser.add_argument("--naive-limit-gib", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    # One measurement in this process (used by the driver below).
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", help=argparse.SUPPRESS)
    return parser


def single_command(args, vocab, method, chunk):
    """The command line of one measurement in a fresh process (--single)."""
    cmd = [
        sys.executable,
        __file__,
        "--single",
        "--method",
        method,
        "--chunk",
        chunk,
        "--vocab",
        str(vocab),
        "--dim",
        str(args.dim),
        "--topk",
        str(args.topk),
        "--similarity",
        args.similarity,
        "--queries",
        args.queries,
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--repeats",
        str(args.repeats),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    return cmd


def measure(args, vocab, method, chunk):
    """The report's row of one measurement: its results, or why it was not run."""
    if method == "naive" and vocab * vocab * 4 / 2**30 > args.naive_limit_gib:
        return {
            "method": method,
            "chunk": chunk,
            "vocab": vocab,
            "skipped": f"V x V fp32 = {vocab * vocab * 4 / 2**30:.0f} GiB > --naive-limit-gib",
        }
    if method == "faiss" and args.device != "cpu":
        return {"method": method, "chunk": chunk, "vocab": vocab, "skipped": "faiss-cpu on CPU only"}
    print(f"[bench_topk] V={vocab} {method} chunk={chunk}", file=sys.stderr, flush=True)
    proc = subprocess.run(single_command(args, vocab, method, chunk), capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        if "No module named 'faiss'" in proc.stderr:
            reason = "faiss not installed"
        return {"method": method, "chunk": chunk, "vocab": vocab, "skipped": reason}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(report):
    """The summary: the settings, one table row per measurement, the targets."""
    lines = [
        f"{report['device']}, {report['dtype']}, D={report['dim']}, k={report['topk']}, {report['similarity']}, "
        f"queries: {report['queries']}, commit {report['commit']}, {report['date']}.",
        "",
    ]
    rows = report["rows"]
    naive = {r["vocab"]: r["median_s"] for r in rows if r["method"] == "naive" and "median_s" in r}
    table = []
    for r in rows:
        if "skipped" in r:
            table.append([r["vocab"], r["method"], r["chunk"], f"not run: {r['skipped']}", "", "", ""])
            continue
        speedup = f"{naive[r['vocab']] / r['median_s']:.1f}x" if r["vocab"] in naive else ""
        peak = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        table.append(
            [r["vocab"], r["method"], r["chunk"], f"{r['median_s']:.3f}", speedup, peak, "yes" if r["exact"] else "NO"]
        )
    lines += markdown_table(
        ["V", "method", "chunk", "median s", "speed-up vs naive", "peak MiB", "exact"], table, align="rlrrrrl"
    )
    for check in report["targets"]:
        lines.append(f"\nTarget: {check['target']}: **{check['result']}** ({check['detail']})")
    return "\n".join(lines) + "\n"


def main():
    args = build_parser().parse_args()
    if args.single:
        args.vocab = args.vocab[0]
        return single(args)

    rows = []
    for vocab in args.vocab:
        for method in args.methods:
            for chunk in args.chunk_sizes if method == "embedding_topk" else ["-"]:
                rows.append(measure(args, vocab, method, chunk))

    from skd_experiments.reporting import commit, today, write_outputs

    report = {
        "benchmark": "bench_topk",
        "device": args.device,
        "dtype": args.dtype,
        "dim": args.dim,
        "topk": args.topk,
        "similarity": args.similarity,
        "queries": args.queries,
        "commit": commit(),
        "date": today(),
        "rows": rows,
    }
    report["targets"] = check_targets(report)
    write_outputs(report, args.json, args.markdown, markdown(report))


# Issue target: at V = 50k on a GPU, embedding_topk at least 10x faster than the naive
# method, with identical results.
TARGET_VOCAB, TARGET_SPEEDUP = 50000, 10.0


def check_targets(report):
    if report["device"] != "cuda":
        return [
            {
                "target": f"V = {TARGET_VOCAB} on CUDA: >= {TARGET_SPEEDUP:.0f}x the naive method, exact",
                "result": "not run",
                "detail": f"measured on {report['device']}",
            }
        ]
    rows = [r for r in report["rows"] if r["vocab"] == TARGET_VOCAB and "median_s" in r]
    naive = [r["median_s"] for r in rows if r["method"] == "naive"]
    ours = [r for r in rows if r["method"] == "embedding_topk"]
    if not naive or not ours:
        return [
            {
                "target": f"V = {TARGET_VOCAB}: >= {TARGET_SPEEDUP:.0f}x the naive method, exact",
                "result": "not run",
                "detail": "give --vocab 50000 and both methods",
            }
        ]
    best = min(ours, key=lambda r: r["median_s"])
    speedup = naive[0] / best["median_s"]
    ok = speedup >= TARGET_SPEEDUP and all(r["exact"] for r in ours)
    return [
        {
            "target": f"V = {TARGET_VOCAB} on CUDA: >= {TARGET_SPEEDUP:.0f}x the naive method, exact",
            "result": "PASS" if ok else "FAIL",
            "detail": f"best chunk {best['chunk']}: {speedup:.1f}x; exact at every chunk size: "
            f"{all(r['exact'] for r in ours)}",
        }
    ]


if __name__ == "__main__":
    main()
