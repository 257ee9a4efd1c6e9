#!/usr/bin/env python
"""Turn result files (scripts/evaluate-translation.sh, scripts/evaluate-lm.sh) into paper-style tables.

  skd-fairseq-tables RESULT.json [...] [--out TABLE.md] [--flags] [--baseline NAME]
                     [--significance [--compare METHOD:REFERENCE ...]] [--plot CURVES.png]

Rows are methods, columns are benchmarks (dataset, pair, split); each cell is the
mean +- standard deviation over seeds, with the number of seeds. A row's runs share one
setting: their flags, or (flags spelled otherwise) their fairseq options apart from the seed
and the directories. Translation results give BLEU and chrF (with their sacrebleu
signatures), language-model results perplexity. Options:

  --flags          a column with each method's criterion preset and extra flags (sweeps)
  --significance   paired bootstrap resampling (1000 resamples) of each method against
                   --baseline, seed by seed (baseline seed s vs method seed s): BLEU with
                   sacrebleu's --paired-bs; perplexity the same way over the samples that
                   fairseq-eval-lm scored (scores.SPLIT.tsv, from scripts/evaluate-lm.sh);
                   and a test over seeds: the per-seed differences to the baseline, their
                   mean and standard deviation, and a two-sided paired t-test
  --compare METHOD:REFERENCE
                   with --significance, the same two tests of METHOD against another
                   row than the baseline (e.g. skd-neighbours:ls-matched, SKD against
                   label smoothing of the same strength); repeat it for more pairs
  --plot FILE      validation perplexity against updates from the runs' train.log files,
                   one curve per method (mean over seeds), as a PNG
  --training-metrics
                   columns with the training metrics the runs logged (SKD's skd_gold_q,
                   skd_tau, skd_weight, skd_top1_gold; the teacher criteria's kd_weight),
                   in the first epoch that logged them and the last (means over seeds)
  --cost           a column with each method's training time and peak memory relative to
                   --baseline's, and a table of the training cost per method (fairseq's
                   wall time, peak memory, target tokens/s; means over seeds): meaningful
                   only for runs trained alone under the same conditions
  --cost-from BENCH_TRAIN.json
                   the cost column from an interleaved benchmarks/bench_train.py report whose
                   variants are named after the rows (step time and peak memory relative to
                   its first variant), for rows trained beside other runs
"""

import argparse
import sys

from skd_experiments.plots import plot
from skd_experiments.significance import bleu_significance, comparisons, lm_significance, significance_sections
from skd_experiments.tables import (
    Cost,
    benchmark_cost_column,
    check_rows,
    load,
    respelled_note,
    table,
    training_metric_columns,
)


def translation_sections(translation, args, compared, extra):
    """The translation table, its sacrebleu signatures and, with --significance, its tests."""
    metrics = [("BLEU", "bleu", 2), ("chrF", "chrf", 2)]
    if any("valid_ppl" in r["metrics"] for r in translation):  # skd-fairseq-validation-perplexity
        metrics.append(("valid perplexity", "valid_ppl", 2))
    kinds = sorted({r["metrics"]["bleu_tokenized_kind"] for r in translation if "bleu_tokenized" in r["metrics"]})
    if kinds:  # the literature's tokenised BLEU (e.g. compound-split for WMT'14 en-de)
        metrics.append((f"tokenised BLEU ({', '.join(kinds)})", "bleu_tokenized", 2))
    lines = table(translation, metrics, args.flags, extra) + respelled_note(translation)
    signatures = sorted(
        {r["metrics"]["bleu_signature"] for r in translation} | {r["metrics"]["chrf_signature"] for r in translation}
    )
    lines += ["", "sacrebleu signatures: " + "; ".join(f"`{s}`" for s in signatures)]
    tokenized = sorted(
        {r["metrics"]["bleu_tokenized_signature"] for r in translation if "bleu_tokenized" in r["metrics"]}
    )
    if tokenized:
        lines += [
            "",
            "tokenised BLEU signature (on the tokenised hypotheses and references): "
            + "; ".join(f"`{s}`" for s in tokenized),
        ]
    if args.significance:
        tested = [m for m in metrics if m[1] in ("bleu", "chrf", "valid_ppl")]
        lines += significance_sections(translation, args.baseline, compared, bleu_significance, tested)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", help="write the Markdown here as well as to stdout")
    parser.add_argument("--flags", action="store_true")
    parser.add_argument("--baseline", default="baseline")
    parser.add_argument("--significance", action="store_true")
    parser.add_argument("--compare", action="append", default=[], metavar="METHOD:REFERENCE")
    parser.add_argument("--plot")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument(
        "--cost-from",
        metavar="BENCH_TRAIN.json",
        help="a benchmarks/bench_train.py report whose variants are named after the rows: their interleaved "
        "step-time and memory ratios as the cost column",
    )
    parser.add_argument("--training-metrics", action="store_true")
    args = parser.parse_args(argv)

    if args.compare and not args.significance:
        parser.error("--compare adds significance tests against another row: it needs --significance")
    results = load(args.results)
    check_rows(results)
    if (args.significance or args.cost) and args.baseline not in {r["method"] for r in results}:
        sys.exit(
            f"make-tables: no results for the baseline '{args.baseline}' (--significance and --cost "
            f"compare with it); the rows are: {', '.join(dict.fromkeys(r['method'] for r in results))}; "
            "name another with --baseline"
        )
    compared = comparisons(args.compare, results, args.baseline)
    translation = [r for r in results if "bleu" in r["metrics"]]
    lm = [r for r in results if "ppl" in r["metrics"]]
    lines = []
    cost = Cost(results, args.baseline) if args.cost else None
    extra = [cost.column()] if cost else []
    if args.cost_from:
        extra.append(benchmark_cost_column(args.cost_from, list(dict.fromkeys(r["method"] for r in results))))
    if args.training_metrics:
        extra += training_metric_columns(results)
    if translation:
        lines += translation_sections(translation, args, compared, extra)
    if lm:
        lines += [""] if lines else []
        lines += table(lm, [("perplexity", "ppl", 2)], args.flags, extra) + respelled_note(lm)
        if args.significance:
            lines += significance_sections(lm, args.baseline, compared, lm_significance, [("perplexity", "ppl", 2)])
    if cost:
        lines += ["", *cost.table()]
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
