"""Significance tests of the result tables: paired bootstrap resampling, seed by seed
(BLEU with sacrebleu, perplexity over fairseq-eval-lm's samples), and a paired t-test over seeds."""

import math
import os
import re
import statistics
import sys

from scipy import stats

from skd_experiments.markdown import markdown_table
from skd_experiments.tables import benchmark_and_metric, benchmark_name


def tested_methods(results, reference, methods):
    """The set of methods to test against ``reference``: ``methods``, or by default every other one."""
    if methods is None:
        methods = [m for m in dict.fromkeys(r["method"] for r in results) if m != reference]
    return set(methods)


def paired_t_test(values, references):
    """t and the two-sided p of the paired t-test (scipy.stats.ttest_rel). Where the differences
    are all equal, scipy's t is undefined (0 / 0 or a division by zero): t is then +-inf with
    p 0, or 0 with p 1 when there is no difference at all."""
    diffs = [v - r for v, r in zip(values, references)]
    if statistics.stdev(diffs) > 0:
        test = stats.ttest_rel(values, references)
        return float(test.statistic), float(test.pvalue)
    mean = statistics.mean(diffs)
    return (math.copysign(math.inf, mean), 0.0) if mean else (0.0, 1.0)


def seed_test(results, baseline, metrics, methods=None):
    """Per-seed differences to the baseline (or another reference row): their mean, spread and a
    paired t-test over seeds."""
    by = {(r["method"], r["dataset"], r["pair"], r["split"], r["seed"]): r for r in results}
    columns = sorted({(r["dataset"], r["pair"], r["split"]) for r in results})
    tested = tested_methods(results, baseline, methods)
    methods = [m for m in dict.fromkeys(r["method"] for r in results) if m in tested]
    rows = []
    for column in columns:
        for method in methods:
            seeds = sorted(
                {k[4] for k in by if k[0] == method and k[1:4] == column and (baseline, *column, k[4]) in by}, key=str
            )
            for label, key, digits in metrics:
                scores = [by[(method, *column, s)]["metrics"].get(key) for s in seeds]
                bases = [by[(baseline, *column, s)]["metrics"].get(key) for s in seeds]
                pairs = [(d, b) for d, b in zip(scores, bases) if d is not None and b is not None]
                if len(pairs) < 2:
                    continue
                diffs = [d - b for d, b in pairs]
                mean, std = statistics.mean(diffs), statistics.stdev(diffs)
                t, p = paired_t_test(*zip(*pairs))
                benchmark, metric = benchmark_and_metric(column, label)
                rows.append(
                    [
                        benchmark,
                        method,
                        metric,
                        ", ".join(map(str, seeds)),
                        ", ".join(f"{d:+.{digits}f}" for d in diffs),
                        f"{mean:+.{digits}f} ± {std:.{digits}f}",
                        f"{t:.2f}",
                        f"{p:.3f}",
                    ]
                )
    if not rows:
        return []
    header = ["benchmark", "method", "metric", "seeds", "per-seed differences", "mean ± std", "t", "p"]
    return [
        f"Test over seeds against `{baseline}`: the difference of each seed's score to `{baseline}`'s "
        "with the same seed, its mean ± standard deviation over seeds, and a two-sided paired t-test "
        "(t = mean / (std / sqrt(n)), n - 1 degrees of freedom).",
        "",
        *markdown_table(header, rows, align="lllllrrr"),
    ]


def hypotheses(result):
    with open(os.path.join(result["run_dir"], result["hypotheses"]), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def references(result):
    with open(os.path.join(result["run_dir"], result["references"]), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def bleu_options(result):
    """The sacrebleu BLEU options a result was scored with, from its signature (tok:, case:)."""
    signature = result["metrics"]["bleu_signature"]
    match = re.search(r"(?:^|\|)tok:([^|]+)", signature)
    return {"tokenize": match.group(1) if match else "13a", "lowercase": "|case:lc|" in f"|{signature}|"}


def bleu_significance(results, baseline, methods=None):
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    lines = [
        f"Paired bootstrap resampling against `{baseline}` (sacrebleu, BLEU, 1000 resamples), "
        "seed by seed: the method's BLEU, its 95 % confidence interval, and p.",
        "",
    ]
    rows = []
    index = {(r["method"], r["dataset"], r["pair"], r["split"], r["seed"]): r for r in results}
    tested = tested_methods(results, baseline, methods)
    signature = None
    for key, r in sorted(index.items(), key=lambda kv: (kv[0][1:4], kv[0][0], str(kv[0][4]))):
        method, *column, seed = key
        base = index.get((baseline, *column, seed))
        if method not in tested or base is None:
            continue
        refs = references(r)
        # The table's BLEU: same tokenizer and casing (e.g. lowercased for IWSLT'14).
        bleu = BLEU(**bleu_options(r))
        test = PairedTest(
            [(baseline, hypotheses(base)), (method, hypotheses(r))],
            {"BLEU": bleu},
            [refs],
            test_type="bs",
            n_samples=1000,
        )
        signatures, scores = test()
        signature = signatures["BLEU"]
        b, m = scores["BLEU"]
        rows.append(
            [
                benchmark_name(column),
                method,
                seed,
                f"{b.score:.2f}",
                f"{m.score:.2f} (± {m.ci:.2f})",
                f"{m.p_value:.4f}",
            ]
        )
    if signature is None:
        return []
    header = ["benchmark", "method", "seed", f"{baseline} BLEU", "method BLEU (± 95 % CI)", "p"]
    return lines + markdown_table(header, rows, align="llrrrr") + ["", f"bootstrap signature: `{signature}`"]


def lm_scores(result):
    """(sample ids, tokens, summed log-probabilities) of a language-model result's scores file."""
    if "scores" not in result:
        sys.exit(
            f"make-tables: {result['run_dir']}/result.{result['split']}.json has no per-sample scores for "
            "the perplexity bootstrap: re-run scripts/evaluate-lm.sh on that run (or leave out --significance)"
        )
    import numpy as np

    table = np.loadtxt(os.path.join(result["run_dir"], result["scores"]), skiprows=1, ndmin=2)
    return table[:, 0].astype(np.int64), table[:, 1], table[:, 2]


def lm_significance(results, baseline, methods=None, n_samples=1000, seed=12345):
    """Paired bootstrap of perplexity: sacrebleu's paired-bs test with fairseq-eval-lm's samples as the units."""
    import numpy as np

    lines = [
        f"Paired bootstrap resampling against `{baseline}` (perplexity, {n_samples} resamples of the "
        "samples fairseq-eval-lm scored, sacrebleu's paired-bs statistic), seed by seed: the method's "
        "perplexity, its 95 % confidence interval, and p.",
        "",
    ]
    rows = []
    index = {(r["method"], r["dataset"], r["pair"], r["split"], r["seed"]): r for r in results}
    tested = tested_methods(results, baseline, methods)
    units = set()
    for key, r in sorted(index.items(), key=lambda kv: (kv[0][1:4], kv[0][0], str(kv[0][4]))):
        method, *column, seed_ = key
        base = index.get((baseline, *column, seed_))
        if method not in tested or base is None:
            continue
        (ids_b, tokens_b, logp_b), (ids_m, tokens_m, logp_m) = lm_scores(base), lm_scores(r)
        if not (np.array_equal(ids_b, ids_m) and np.array_equal(tokens_b, tokens_m)):
            sys.exit(
                f"make-tables: {r['run_dir']} and {base['run_dir']} scored different samples; evaluate both "
                "with the same data and EVAL_LM_ARGS"
            )
        idx = np.random.default_rng(seed).choice(len(ids_b), size=(n_samples, len(ids_b)), replace=True)
        tokens = tokens_b[idx].sum(1)
        ppl_b, ppl_m = np.exp(-logp_b[idx].sum(1) / tokens), np.exp(-logp_m[idx].sum(1) / tokens)
        real_b, real_m = np.exp(-logp_b.sum() / tokens_b.sum()), np.exp(-logp_m.sum() / tokens_b.sum())
        # As sacrebleu's paired-bs: the resampled |difference|, centred, against the observed one;
        # the CI is half the central 95 % range of the method's resampled perplexities.
        diffs = np.abs(ppl_m - ppl_b)
        p = (np.sum(diffs - diffs.mean() > abs(real_m - real_b)) + 1) / (n_samples + 1)
        ppl_sorted = np.sort(ppl_m)
        ci = 0.5 * (ppl_sorted[n_samples - n_samples // 40 - 1] - ppl_sorted[n_samples // 40])
        units.add(f"{benchmark_name(column)}: {len(ids_b)} samples, {int(tokens_b.sum())} tokens")
        rows.append([benchmark_name(column), method, seed_, f"{real_b:.2f}", f"{real_m:.2f} (± {ci:.2f})", f"{p:.4f}"])
    if not units:
        return []
    header = ["benchmark", "method", "seed", f"{baseline} perplexity", "method perplexity (± 95 % CI)", "p"]
    return (
        lines
        + markdown_table(header, rows, align="llrrrr")
        + ["", f"bootstrap: {n_samples} resamples with numpy seed {seed}; resampled units: {'; '.join(sorted(units))}"]
    )


def comparisons(pairs, results, baseline):
    """{reference: [methods]} from --compare METHOD:REFERENCE pairs, in the order given, after checking
    that every named row has results."""
    known = list(dict.fromkeys(r["method"] for r in results))
    by_reference = {}
    for pair in pairs:
        method, sep, reference = pair.partition(":")
        if not sep or not method or not reference or method == reference:
            sys.exit(
                f"make-tables: --compare {pair!r}: expected METHOD:REFERENCE, two different rows "
                "(e.g. skd-neighbours:ls-matched)"
            )
        for name in (method, reference):
            if name not in known:
                sys.exit(f"make-tables: --compare {pair}: no results for '{name}'; the rows are: {', '.join(known)}")
        if reference == baseline:
            sys.exit(
                f"make-tables: --compare {pair}: every row is already tested against the baseline "
                f"'{baseline}' (--significance)"
            )
        by_reference.setdefault(reference, [])
        if method not in by_reference[reference]:
            by_reference[reference].append(method)
    return by_reference


def significance_sections(results, baseline, compared, bootstrap, metrics):
    """The paired bootstrap and the test over seeds against the baseline, then against each
    --compare reference for the methods compared with it."""
    lines = []
    for reference, methods in [(baseline, None), *compared.items()]:
        per_seed = bootstrap(results, reference, methods)
        lines += ([""] + per_seed) if per_seed else []
        over_seeds = seed_test(results, reference, metrics, methods)
        lines += ([""] + over_seeds) if over_seeds else []
    return lines
