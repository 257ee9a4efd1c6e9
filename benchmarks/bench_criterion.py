#!/usr/bin/env python
"""What the loss part of one training step costs: label_smoothed_cross_entropy vs label_smoothed_skd.

The "loss part" is the output projection, log-softmax, the criterion and the backward
pass through them, on realistic shapes, using the real fairseq criteria on a stand-in
model that is only an output layer. Variants are interleaved (round-robin) and
repeated; each reports the median and spread of its step time and its ratio to the
baseline measured in the same run. The neighbour table refresh
(``--skd-neighbour-refresh R``) is timed on its own and amortised over R steps. Peak
memory is measured after the timing, one step per variant and one step that rebuilds
the table (skd_experiments/peak_memory.py: CUDA allocator statistics, or on the CPU the
resident set's high-water mark).

With --adaptive C1,C2 the output layer is fairseq's AdaptiveSoftmax as transformer_lm_wiki103
builds it (tied to an adaptive input, factor 4, tied projections) and the baseline is
adaptive_loss; SKD's variants then run without label smoothing. Its table refresh over the
whole vocabulary is timed on --refresh-rows of the query rows and scaled to V (the search
costs the same per query row), which the report states.

Examples:
  python benchmarks/bench_criterion.py --tokens 8192 --vocab 32000 --dim 512 --topk 8 \\
      --json benchmarks/results/criterion-cpu.json --markdown -
  python benchmarks/bench_criterion.py --adaptive 20000,60000 --tokens 2048 --vocab 267744 \\
      --dim 1024 --topk 8 --refresh-rows 4096 --markdown -
"""

import argparse
import functools
import os
import platform
import statistics
import sys
import time

import torch

from skd_experiments import peak_memory
from skd_experiments.criterion_bench import (
    AdaptiveOutputModel,
    OutputLayerModel,
    StandInTask,
    build_criterion,
    build_dictionary,
    criterion_variants,
)
from skd_experiments.criterion_targets import check_targets, shape_grid
from skd_experiments.markdown import markdown_table
from skd_experiments.peak_memory import PeakMemory
from skd_experiments.reporting import commit, today, write_outputs


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    """The wall time of fn(), the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def synthetic_sample(dictionary, tokens, dim, device, dtype):
    """Random hidden states and their gold tokens."""
    hidden = torch.randn(tokens, dim, device=device, dtype=dtype, requires_grad=True)
    # Zipf-like gold tokens, as in text: a few thousand distinct types per batch.
    probs = 1.0 / torch.arange(1, len(dictionary) - dictionary.nspecial + 1, dtype=torch.float64)
    target = torch.multinomial(probs / probs.sum(), tokens, replacement=True) + dictionary.nspecial
    target = target.to(device)
    return {"net_input": {"hidden": hidden}, "target": target, "ntokens": tokens}


def build_criteria(args, task, topk, device):
    """{variant: its criterion}, the baseline first."""
    cutoff = args.adaptive
    criteria = {}
    for name, skd in criterion_variants(args.refresh, args.adaptive_candidates if cutoff else ()):
        if name != "baseline":
            # tau 1 over every token: the setting the committed results measured (the default gold
            # mass adds a fixed number of Newton steps; --skd-exclude-unseen one sync a refresh).
            skd = dict(
                skd,
                skd_alpha=0.5,
                skd_topk=topk,
                skd_similarity=args.similarity,
                skd_temperature=1.0,
                skd_include_unseen=True,
            )
            kind = "skd-adaptive" if cutoff else "skd"
        else:
            kind = "adaptive_loss" if cutoff else "baseline"
        criteria[name] = build_criterion(kind, task, **skd).to(device)
    return criteria


def loss_step(model, sample, criterion):
    """The loss part of one training step: forward through the output layer and the criterion, backward."""
    model.zero_grad(set_to_none=True)
    sample["net_input"]["hidden"].grad = None
    loss, _, _ = criterion(model, sample)
    loss.backward()


def time_steps(criteria, step, warmup, repeats, device):
    """{variant: its step times}, the variants interleaved round-robin."""
    times = {name: [] for name in criteria}
    for criterion in criteria.values():  # warm-up (builds the neighbour tables once)
        for _ in range(warmup):
            step(criterion)
    for _ in range(repeats):
        for name, criterion in criteria.items():
            times[name].append(timed(functools.partial(step, criterion), device))
    return times


def searched_spaces(model, criterion):
    """The spaces the criterion's table refresh searches: the output layer's, or an adaptive
    softmax's clusters (each in its own space, or all in one with --skd-adaptive-candidates any)."""
    from skd_fairseq.neighbours import Space

    if model.decoder.adaptive_softmax is None:
        return [Space(model.decoder.output_projection.weight)]
    from skd_fairseq.adaptive import cluster_spaces, embedding_matrix
    from skd_fairseq.criterions.fairseq_access import adaptive_parts

    parts = adaptive_parts(model.decoder.adaptive_softmax)
    if criterion.settings.adaptive_candidates == "any":
        return [Space(embedding_matrix(parts))]
    return cluster_spaces(parts)


def refresh_seconds(model, criterion, refresh_rows, topk, similarity, device):
    """The search for at most refresh_rows query rows of each space; the time per row, scaled
    to the space's rows (the search costs the same per query row), summed over the spaces."""
    from skd_fairseq.neighbours import embedding_topk, excluded_per_space

    spaces = searched_spaces(model, criterion)
    starts = torch.tensor([space.first for space in spaces], device=device)
    scaled = 0.0
    for space, local in zip(spaces, excluded_per_space(spaces, starts, criterion.candidates.excluded_ids)):
        rows = min(refresh_rows, space.rows)
        with torch.no_grad():
            search = functools.partial(
                embedding_topk,
                space.weight,
                torch.arange(rows, device=device),
                topk,
                similarity,
                exclude=local,
                gram=space.gram,
            )
            seconds = timed(search, device)
        scaled += seconds * space.rows / rows
    return scaled


def measure_peaks(criteria, step, table_criterion, search_table, whole_table, device):
    """({variant: the peak of one step}, the peak of the table variant's step that rebuilds the
    table, every R-th step: the worst step of a run)."""
    peaks = {}
    for name, criterion in criteria.items():
        with PeakMemory(device) as used:
            step(criterion)
        peaks[name] = used.bytes
    if whole_table:
        table_criterion.candidates.neighbour_table.table = None
        with PeakMemory(device) as used:
            step(table_criterion)
    else:  # a whole refresh step would take too long: the search on its own (its rows + one block)
        with PeakMemory(device) as used:
            search_table()
    return peaks, used.bytes


def variant_rows(times, peaks, table_variant, refresh_s, refresh_step_peak, period):
    """The report's row of each variant; the table variant's adds its refresh, also amortised over its
    period of R steps."""
    base = statistics.median(times["baseline"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        row = {
            "variant": name,
            "median_s": med,
            "min_s": min(ts),
            "max_s": max(ts),
            "ratio_to_baseline": med / base,
            "peak_bytes": peaks[name],
        }
        if name == table_variant:
            row["refresh_step_peak_bytes"] = refresh_step_peak
            row["refresh_s"] = refresh_s
            row["amortised_median_s"] = med + refresh_s / period
            row["amortised_ratio_to_baseline"] = row["amortised_median_s"] / base
        rows.append(row)
    return rows


def measure_shape(args, device, dtype, tokens, vocab, dim, topk):
    torch.manual_seed(0)
    dictionary = build_dictionary(vocab)
    task = StandInTask(dictionary)
    cutoff = args.adaptive
    model = (AdaptiveOutputModel(vocab, dim, cutoff) if cutoff else OutputLayerModel(vocab, dim)).to(
        device=device, dtype=dtype
    )
    model.train()
    sample = synthetic_sample(dictionary, tokens, dim, device, dtype)
    criteria = build_criteria(args, task, topk, device)
    step = functools.partial(loss_step, model, sample)
    times = time_steps(criteria, step, args.warmup, args.repeats, device)

    # The table refresh, timed on its own: every R steps, the whole vocabulary's top-k, searched
    # as the criterion searches it (one space, or each cluster of an adaptive softmax in its own).
    table_variant = next(name for name in criteria if name.startswith(f"skd-neighbours-R{args.refresh}"))
    table_criterion = criteria[table_variant]
    refresh_rows = min(args.refresh_rows or vocab, vocab)
    search_table = functools.partial(
        refresh_seconds, model, table_criterion, refresh_rows, topk, args.similarity, device
    )
    refresh_times = [search_table() for _ in range(max(1, args.repeats // 2))]

    # Peak memory after the timing.
    peaks, refresh_step_peak = {name: None for name in criteria}, None
    if args.memory_unsupported is None:
        peaks, refresh_step_peak = measure_peaks(
            criteria, step, table_criterion, search_table, refresh_rows == vocab, device
        )
    rows = variant_rows(times, peaks, table_variant, statistics.median(refresh_times), refresh_step_peak, args.refresh)
    return {
        "tokens": tokens,
        "vocab": vocab,
        "dim": dim,
        "topk": topk,
        "adaptive_cutoff": cutoff,
        "adaptive_candidates": table_criterion.settings.adaptive_candidates if cutoff else None,
        "refresh_rows_timed": refresh_rows,
        "distinct_gold_tokens": int(torch.unique(sample["target"]).numel()),
        "variants": rows,
    }


def mib(value):
    return "n/a" if value is None else f"{value / 2**20:.0f}"


def variant_cells(shape, variant):
    """A variant's row of the summary table; its memory ratio is that of its worst step (a refresh step)."""
    base_peak = shape["variants"][0]["peak_bytes"]
    amort = variant.get("amortised_ratio_to_baseline")
    peaks = [p for p in (variant["peak_bytes"], variant.get("refresh_step_peak_bytes")) if p is not None]
    peak = mib(variant["peak_bytes"])
    if variant.get("refresh_step_peak_bytes") is not None:
        peak += f" (refresh step {mib(variant['refresh_step_peak_bytes'])})"
    ratio = f"{max(peaks) / base_peak:.3f}" if peaks and base_peak else "n/a"
    return [
        shape["tokens"],
        shape["vocab"],
        shape["dim"],
        shape["topk"],
        variant["variant"],
        f"{variant['median_s'] * 1e3:.1f}",
        f"{variant['min_s'] * 1e3:.1f}-{variant['max_s'] * 1e3:.1f}",
        f"{variant['ratio_to_baseline']:.3f}",
        "" if amort is None else f"{amort:.3f}",
        peak,
        ratio,
    ]


def refresh_notes(shape):
    """The lines under the table on a shape's table refresh: its time, and how it was timed."""
    lines = []
    refresh = [v for v in shape["variants"] if "refresh_s" in v]
    if refresh:
        lines.append(
            f"\nN {shape['tokens']}, V {shape['vocab']}: one table refresh took "
            f"{refresh[0]['refresh_s']:.1f} s"
            + (f" ({shape.get('adaptive_candidates')} candidates)" if shape.get("adaptive_cutoff") else "")
        )
    if shape.get("refresh_rows_timed", shape["vocab"]) < shape["vocab"]:
        lines.append(
            f"\nV {shape['vocab']}: the table refresh was timed on at most {shape['refresh_rows_timed']} "
            "query rows of each searched space (the vocabulary, or each cluster) and scaled to all "
            "its rows; its peak memory is the search's own (the rows searched and one block), "
            "measured on its own."
        )
    return lines


def markdown(report):
    lines = [
        f"Device: {report['device_name']} ({report['device']}, {report['dtype']}), "
        f"torch {report['torch']}, commit {report['commit']}, {report['date']}; "
        f"{report['repeats']} interleaved repeats, similarity {report['similarity']}.",
        "",
        f"Peak memory: {report['memory']}.",
        "",
    ]
    rows = [variant_cells(shape, v) for shape in report["shapes"] for v in shape["variants"]]
    header = [
        "N tokens",
        "V",
        "D",
        "k",
        "variant",
        "median ms",
        "min-max ms",
        "ratio",
        "amortised ratio",
        "peak MiB",
        "memory ratio",
    ]
    lines += markdown_table(header, rows, align="rrrrlrrrrrr")
    for shape in report["shapes"]:
        lines += refresh_notes(shape)
    for check in report["targets"]:
        value = "" if check["value"] is None else f" (measured {check['value']:.3f})"
        lines.append(
            f"\nTarget, {report['device']}, {check.get('shape', '')}: {check['target']}: **{check['result']}**{value}"
        )
    return "\n".join(lines) + "\n"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="parameter/activation dtype (log-softmax and similarities stay fp32)",
    )
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--vocab", type=int, nargs="+", default=[8000, 32000, 50000])
    parser.add_argument("--dim", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--topk", type=int, nargs="+", default=[4, 8, 32])
    parser.add_argument(
        "--grid",
        choices=["product", "axes"],
        default="product",
        help="product: every combination of the lists above; axes: the "
        "transformer-base shape (N 8192, V 32000, D 512, k 8) and, one axis at a "
        "time, each listed value of that axis with the others at the base",
    )
    parser.add_argument("--similarity", default="cosine", choices=["cosine", "l2", "dot"])
    parser.add_argument(
        "--refresh", type=int, default=None, help="R for the cached-table variant (default: the criterion's default)"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--adaptive", help="cutoffs C1,C2,...: an adaptive-softmax output layer against adaptive_loss")
    parser.add_argument(
        "--adaptive-candidates",
        nargs="+",
        choices=["cluster", "any"],
        default=["cluster"],
        help="with --adaptive: the SKD variants' --skd-adaptive-candidates (cluster, the "
        "default, unsuffixed; any suffixed -any); the refresh and targets are the first's",
    )
    parser.add_argument(
        "--refresh-rows",
        type=int,
        default=None,
        help="time the table refresh on this many query rows and scale to V (default: all)",
    )
    parser.add_argument("--json", help="write the full report here")
    parser.add_argument("--markdown", help="write the summary table here ('-' for stdout)")
    return parser


def parse_args(argv):
    """The command line's arguments, checked, with --adaptive's cutoffs as numbers and --refresh's default."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.adaptive:
        try:
            args.adaptive = [int(c) for c in args.adaptive.split(",")]
        except ValueError:
            parser.error(f"--adaptive takes cutoffs like 20000,60000, got {args.adaptive!r}")
        if any(c >= min(args.vocab) for c in args.adaptive):
            parser.error(f"--adaptive cutoffs must be below every --vocab ({min(args.vocab)})")
    if args.refresh is None:
        from skd_fairseq.criterions.label_smoothed_skd import LabelSmoothedSkdCriterionConfig

        args.refresh = LabelSmoothedSkdCriterionConfig.skd_neighbour_refresh
    if args.refresh < 1:
        parser.error("--refresh must be >= 1 (R = 0 is always measured)")
    return args


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()


def build_report(args, argv, device, shapes):
    """The report of the measured shapes, with the settings and machine that measured them."""
    return {
        "benchmark": "bench_criterion",
        "date": today(),
        "commit": commit(),
        "device": device.type,
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "torch": torch.__version__,
        "similarity": args.similarity,
        "memory": peak_memory.describe(device)
        if args.memory_unsupported is None
        else f"not measured: {args.memory_unsupported}",
        "refresh": args.refresh,
        "repeats": args.repeats,
        "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        "shapes": shapes,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]

    args.memory_unsupported = peak_memory.cpu_supported() if device.type == "cpu" else None
    if device.type == "cpu" and args.memory_unsupported is None:
        peak_memory.cpu_mode()
    shapes = []
    for tokens, vocab, dim, topk in shape_grid(args):
        print(f"[bench_criterion] N={tokens} V={vocab} D={dim} k={topk}", file=sys.stderr, flush=True)
        shapes.append(measure_shape(args, device, dtype, tokens, vocab, dim, topk))
    report = build_report(args, argv, device, shapes)
    report["targets"] = check_targets(report)
    write_outputs(report, args.json, args.markdown, markdown(report))


if __name__ == "__main__":
    main()
