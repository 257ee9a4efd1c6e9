#!/usr/bin/env python
"""Turn result files (scripts/evaluate-translation.sh, scripts/evaluate-lm.sh) into paper-style tables.

  make-tables.py RESULT.json [...] [--out TABLE.md] [--flags] [--baseline NAME]
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
                   skd_tau, skd_weight, skd_top1_gold; PS-KD's kd_weight), in the first
                   epoch that logged them and the last (means over seeds)
  --cost           a column with each method's training time and peak memory relative to
                   --baseline's, and a table of the training cost per method (fairseq's
                   wall time, peak memory, target tokens/s; means over seeds)
"""

import argparse
import collections
import json
import math
import os
import re
import statistics
import sys

from results import run_fields


def load(paths):
    results = []
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        # Result files carry the run's fields at the top level; older ones only in "training".
        if "flags" not in result:
            result = {**run_fields(result.get("training", {})), **result}
        result["method"] = result.get("method") or "unknown"
        result["settings"] = result["flags"]
        result["run_dir"] = os.path.dirname(os.path.realpath(path))  # result paths are relative to it
        result.setdefault("pair", "")
        results.append(result)
    return results


# Options that name a run rather than set it: runs that differ only in these are one setting.
RUN_NAMING_OPTIONS = ("--seed", "--save-dir", "--user-dir")


def fairseq_options(result):
    """The positional arguments of a run's recorded fairseq command and {option: value} (the
    last value where an option is repeated, as argparse takes it; True for a switch); None when
    the result does not record its command."""
    command = result.get("training", {}).get("command")
    if not command:
        return None
    options, positional, option = {}, [], None
    for token in command[1:]:
        if re.match(r"-[A-Za-z-]", token):  # "-1" is a value, "-s" an option
            option = token
            options[option] = True  # a switch, unless a value follows
        elif option is not None:
            options[option], option = token, None
        else:
            positional.append(token)
    return positional, options


def fairseq_setting(result):
    """fairseq_options without the options that name the run; None without a recorded command."""
    parsed = fairseq_options(result)
    if parsed is None:
        return None
    positional, options = parsed
    return positional, {k: v for k, v in options.items() if k not in RUN_NAMING_OPTIONS}


def check_rows(results):
    """A row averages the seeds of one setting: stop when a method's runs differ in their flags,
    or when two results score the same (method, benchmark, split, seed). Flags spelled otherwise
    for the same fairseq command (an explicit flag equal to the preset's, a preset changed since)
    are one setting: the row shows the shortest spelling, and the others go in r["spelled"]."""
    settings, seen = {}, {}
    for r in results:
        first = settings.setdefault(r["method"], r)
        if r["settings"] != first["settings"] and (
                (setting := fairseq_setting(r)) is None or setting != fairseq_setting(first)):
            sys.exit(f"make-tables: '{r['method']}' has runs with different settings: `{first['settings']}` "
                     f"({first['run_dir']}) and `{r['settings']}` ({r['run_dir']}); a row averages one "
                     "setting's seeds: give the other setting its own row (train.sh --method NAME, or "
                     "sweep.sh --variant NAME=...)")
        key = (r["method"], r["dataset"], r["pair"], r["split"], r.get("seed"))
        if key in seen:
            sys.exit(f"make-tables: two results for {r['method']} seed {r.get('seed')} on "
                     f"{benchmark_name(key[1:4])}: {seen[key]} and {r['run_dir']}; pass each run once")
        seen[key] = r["run_dir"]
    shortest = {}
    for r in results:
        shortest[r["method"]] = min(shortest.get(r["method"], r["settings"]), r["settings"], key=len)
    for r in results:
        if r["settings"] != shortest[r["method"]]:
            r["spelled"], r["settings"] = r["settings"], shortest[r["method"]]


def respelled_note(results):
    """A line naming the runs whose flags were spelled otherwise than their row's."""
    runs = [f"`{r['method']}` seed {r.get('seed')} ran as `{r['spelled']}`" for r in results if "spelled" in r]
    if not runs:
        return []
    return ["", "Same setting, other flags: " + "; ".join(runs) + " (the same fairseq options apart from "
            "the seed and the directories; each run's command is in its train.json)."]


def cell(values, digits=2):
    if not values:
        return "-"
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def benchmark_name(column):
    return " ".join(filter(None, column))


def table(results, metrics, show_flags, extra_columns=()):
    """One Markdown table: rows methods, columns (benchmark x metric), then extra_columns:
    (header, method -> text) pairs."""
    columns = sorted({(r["dataset"], r["pair"], r["split"]) for r in results})
    methods = list(dict.fromkeys(r["method"] for r in results))
    settings = {r["method"]: r["settings"] for r in results}
    by = collections.defaultdict(list)
    for r in results:
        by[(r["method"], r["dataset"], r["pair"], r["split"])].append(r)
    header = ["method"] + (["settings"] if show_flags else [])
    header += [f"{benchmark_name(c)}: {label}" for label, _, _ in metrics for c in columns]
    header += [title for title, _ in extra_columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        row = [m] + ([f"`{settings[m]}`"] if show_flags else [])
        for _, key, digits in metrics:
            row += [cell([x["metrics"][key] for x in by[(m, *c)] if key in x["metrics"]], digits)
                    for c in columns]
        row += [text(m) for _, text in extra_columns]
        lines.append("| " + " | ".join(row) + " |")
    return lines




class Cost:
    """Training cost per method (means over its runs) and ratios to the baseline's."""

    def __init__(self, results, baseline):
        self.baseline = baseline
        self.by = collections.defaultdict(list)
        for r in results:
            self.by[r["method"]].append(r)
        kinds = {r.get("peak_memory_kind") for r in results}
        self.memory_kind = " / ".join(sorted(k for k in kinds if k)) or "host resident set"

    def mean(self, method, key):
        values = [r[key] for r in self.by.get(method, []) if r.get(key) is not None]
        return statistics.mean(values) if values else None

    def ratio(self, method, key):
        value, base = self.mean(method, key), self.mean(self.baseline, key)
        return f"{value / base:.3f}" if value is not None and base else "-"

    def column(self):
        """The main table's cost column: training time and peak memory relative to the baseline."""
        return (f"cost vs {self.baseline}: time × / memory ×",
                lambda m: f"{self.ratio(m, 'wall_time_s')} / {self.ratio(m, 'peak_memory_mib')}")

    def table(self):
        def plain(value, digits):
            return "-" if value is None else f"{value:,.{digits}f}"

        lines = [f"Training cost (means over seeds; ratios to {self.baseline}; peak memory: {self.memory_kind}):",
                 "", "| method | train wall s | × | peak memory MiB | × | target tokens/s | × |",
                 "|---|---|---|---|---|---|---|"]
        for m in self.by:
            lines.append(
                f"| {m} | {plain(self.mean(m, 'wall_time_s'), 0)} | {self.ratio(m, 'wall_time_s')} "
                f"| {plain(self.mean(m, 'peak_memory_mib'), 0)} | {self.ratio(m, 'peak_memory_mib')} "
                f"| {plain(self.mean(m, 'tokens_per_s'), 0)} | {self.ratio(m, 'tokens_per_s')} |"
            )
        return lines


def student_t_p_value(t, df):
    """Two-sided p of Student's t: I_x(df/2, 1/2) with x = df / (df + t^2)."""
    if not math.isfinite(t):
        return 0.0
    x = df / (df + t * t)
    a, b = df / 2.0, 0.5
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):  # the continued fraction converges fast on the other side
        return 1.0 - front * _beta_fraction(b, a, 1 - x) / b
    return front * _beta_fraction(a, b, x) / a


def _beta_fraction(a, b, x, steps=200, tiny=1e-300):
    """Lentz's continued fraction of the incomplete beta function."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, steps + 1):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def tested_methods(results, reference, methods):
    """The set of methods to test against ``reference``: ``methods``, or by default every other one."""
    if methods is None:
        methods = [m for m in dict.fromkeys(r["method"] for r in results) if m != reference]
    return set(methods)


def seed_test(results, baseline, metrics, methods=None):
    """Per-seed differences to the baseline (or another reference row): their mean, spread and a
    paired t-test over seeds."""
    by = {(r["method"], r["dataset"], r["pair"], r["split"], r["seed"]): r for r in results}
    columns = sorted({(r["dataset"], r["pair"], r["split"]) for r in results})
    tested = tested_methods(results, baseline, methods)
    methods = [m for m in dict.fromkeys(r["method"] for r in results) if m in tested]
    lines = [f"Test over seeds against `{baseline}`: the difference of each seed's score to `{baseline}`'s "
             "with the same seed, its mean ± standard deviation over seeds, and a two-sided paired t-test "
             "(t = mean / (std / sqrt(n)), n - 1 degrees of freedom).", "",
             "| benchmark | method | metric | seeds | per-seed differences | mean ± std | t | p |",
             "|---|---|---|---|---|---:|---:|---:|"]
    rows = 0
    for column in columns:
        for method in methods:
            seeds = sorted({k[4] for k in by if k[0] == method and k[1:4] == column and (baseline, *column, k[4]) in by},
                           key=str)
            for label, key, digits in metrics:
                diffs = [by[(method, *column, s)]["metrics"].get(key) for s in seeds]
                bases = [by[(baseline, *column, s)]["metrics"].get(key) for s in seeds]
                pairs = [(d, b) for d, b in zip(diffs, bases) if d is not None and b is not None]
                if len(pairs) < 2:
                    continue
                diffs = [d - b for d, b in pairs]
                mean, std, n = statistics.mean(diffs), statistics.stdev(diffs), len(diffs)
                t = mean / (std / math.sqrt(n)) if std > 0 else math.copysign(math.inf, mean) if mean else 0.0
                p = student_t_p_value(t, n - 1) if mean or std else 1.0
                lines.append(f"| {benchmark_name(column)} | {method} | {label} | {', '.join(map(str, seeds))} | "
                             f"{', '.join(f'{d:+.{digits}f}' for d in diffs)} | {mean:+.{digits}f} ± {std:.{digits}f} | "
                             f"{t:.2f} | {p:.3f} |")
                rows += 1
    return lines if rows else []


TRAIN_EPOCH = re.compile(r"\| train \| epoch (\d+) \|(.*)$")


def log_matches(run_dir, pattern):
    """The matches of ``pattern`` in the run's train.log, in order (none without a log)."""
    path = os.path.join(run_dir, "train.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [m for m in map(pattern.search, f) if m]


# Training metrics the criteria log per epoch, shown as "first value -> last value" columns:
# SKD's gold mass and temperature (softmax weighting), its distance weight and how often the
# top-1 prediction is the gold token (distance weighting), and PS-KD's teacher weight a_t.
TRAINING_METRICS = ("skd_gold_q", "skd_tau", "skd_weight", "skd_top1_gold", "kd_weight")


def training_metrics(run_dir, names=TRAINING_METRICS):
    """{name: (first epoch, its value, the last epoch's value)} from the run's train.log epoch
    summaries (the first epoch that logged the metric: SKD that starts late logs it later)."""
    epochs = {int(m.group(1)): dict(re.findall(r"\| (\w+) ([-0-9.e]+)", "|" + m.group(2)))
              for m in log_matches(run_dir, TRAIN_EPOCH)}
    out = {}
    for name in names:
        found = [(e, epochs[e][name]) for e in sorted(epochs) if name in epochs[e]]
        if name == "kd_weight":  # 0 until the teacher exists: its first value is the first nonzero one
            found = [(e, v) for e, v in found if float(v) > 0] or found
        if found:
            out[name] = (found[0][0], float(found[0][1]), float(found[-1][1]))
    return out


def training_metric_columns(results):
    """(header, method -> text) columns for the SKD training metrics that any run logged."""
    by_method = collections.defaultdict(list)
    for r in results:
        by_method[r["method"]].append(training_metrics(r["run_dir"]))
    columns = []
    for name in TRAINING_METRICS:
        logged = [m[name] for runs in by_method.values() for m in runs if name in m]
        if not logged:
            continue
        first_epochs = sorted({v[0] for v in logged})
        first = f"epoch {first_epochs[0]}" if len(first_epochs) == 1 else "first epoch logged"

        def text(method, name=name):
            values = [m[name] for m in by_method[method] if name in m]
            if not values:
                return "-"
            start, end = statistics.mean(v[1] for v in values), statistics.mean(v[2] for v in values)
            return f"{start:.3f} → {end:.3f}"
        columns.append((f"{name}, {first} → last", text))
    return columns


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


def significance(results, baseline, methods=None):
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    lines = [f"Paired bootstrap resampling against `{baseline}` (sacrebleu, BLEU, 1000 resamples), "
             "seed by seed: the method's BLEU, its 95 % confidence interval, and p.", ""]
    lines += [f"| benchmark | method | seed | {baseline} BLEU | method BLEU (± 95 % CI) | p |", "|---|---|---:|---:|---:|---:|"]
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
        test = PairedTest([(baseline, hypotheses(base)), (method, hypotheses(r))], {"BLEU": bleu},
                          [refs], test_type="bs", n_samples=1000)
        signatures, scores = test()
        signature = signatures["BLEU"]
        b, m = scores["BLEU"]
        lines.append(f"| {benchmark_name(column)} | {method} | {seed} | {b.score:.2f} | "
                     f"{m.score:.2f} (± {m.ci:.2f}) | {m.p_value:.4f} |")
    if signature is None:
        return []
    return lines + ["", f"bootstrap signature: `{signature}`"]


def lm_scores(result):
    """(sample ids, tokens, summed log-probabilities) of a language-model result's scores file."""
    if "scores" not in result:
        sys.exit(f"make-tables: {result['run_dir']}/result.{result['split']}.json has no per-sample scores for "
                 "the perplexity bootstrap: re-run scripts/evaluate-lm.sh on that run (or leave out --significance)")
    import numpy as np
    table = np.loadtxt(os.path.join(result["run_dir"], result["scores"]), skiprows=1, ndmin=2)
    return table[:, 0].astype(np.int64), table[:, 1], table[:, 2]


def lm_significance(results, baseline, methods=None, n_samples=1000, seed=12345):
    """Paired bootstrap of perplexity: sacrebleu's paired-bs test with fairseq-eval-lm's samples as the units."""
    import numpy as np

    lines = [f"Paired bootstrap resampling against `{baseline}` (perplexity, {n_samples} resamples of the "
             "samples fairseq-eval-lm scored, sacrebleu's paired-bs statistic), seed by seed: the method's "
             "perplexity, its 95 % confidence interval, and p.", ""]
    lines += [f"| benchmark | method | seed | {baseline} perplexity | method perplexity (± 95 % CI) | p |",
              "|---|---|---:|---:|---:|---:|"]
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
            sys.exit(f"make-tables: {r['run_dir']} and {base['run_dir']} scored different samples; evaluate both "
                     "with the same data and EVAL_LM_ARGS")
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
        lines.append(f"| {benchmark_name(column)} | {method} | {seed_} | {real_b:.2f} | {real_m:.2f} (± {ci:.2f}) | {p:.4f} |")
    if not units:
        return []
    return lines + ["", f"bootstrap: {n_samples} resamples with numpy seed {seed}; "
                    f"resampled units: {'; '.join(sorted(units))}"]


VALID = re.compile(r"\| valid \| epoch \d+ \| valid on '[^']+' subset \|.*?\| ppl ([0-9.]+) .*?\| num_updates (\d+)")


def logged_loss_factor(result):
    """How many times the model's loss a run's log shows in validation: 2 for fairseq's R-Drop
    criterion with --rdrop-alpha > 0, which scores each validation batch twice (dropout off, so
    two equal copies) and divides by one copy's tokens; 1 otherwise."""
    _, options = fairseq_options(result) or ([], {})
    if options.get("--criterion") != "label_smoothed_cross_entropy_with_rdrop":
        return 1
    return 2 if float(options.get("--rdrop-alpha", 0)) > 0 else 1  # fairseq's default alpha is 0


def validation_curve(run_dir, loss_factor=1):
    """{update: validation perplexity}, corrected for a log that shows loss_factor times the loss."""
    return {int(m.group(2)): float(m.group(1)) ** (1 / loss_factor) for m in log_matches(run_dir, VALID)}


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = sorted({(r["dataset"], r["pair"]) for r in results})
    fig, axes = plt.subplots(1, len(columns), figsize=(6 * len(columns), 4), squeeze=False)
    for ax, column in zip(axes[0], columns):
        runs = {}
        for r in results:
            if (r["dataset"], r["pair"]) == column:
                runs[r["run_dir"]] = r  # one curve per run, whatever split was scored
        by_method = collections.defaultdict(list)
        for run_dir, r in runs.items():
            by_method[r["method"]].append(validation_curve(run_dir, logged_loss_factor(r)))
        for method, curves in by_method.items():
            # Mean over seeds where every seed has a validation point.
            updates = sorted(set.intersection(*(set(c) for c in curves)))
            if not updates:
                print(f"make-tables: no validation point common to the {len(curves)} run(s) of {method} "
                      f"(missing or differing train.log); {method} is left out of {path}", file=sys.stderr)
            else:
                ax.plot(updates, [statistics.mean(c[u] for c in curves) for u in updates], marker="o",
                        label=f"{method} (n={len(curves)})")
        ax.set_title(f"{benchmark_name(column)}: validation")
        ax.set_xlabel("updates")
        ax.set_ylabel("validation perplexity (mean over seeds)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def comparisons(pairs, results, baseline):
    """{reference: [methods]} from --compare METHOD:REFERENCE pairs, in the order given, after checking
    that every named row has results."""
    known = list(dict.fromkeys(r["method"] for r in results))
    by_reference = {}
    for pair in pairs:
        method, sep, reference = pair.partition(":")
        if not sep or not method or not reference or method == reference:
            sys.exit(f"make-tables: --compare {pair!r}: expected METHOD:REFERENCE, two different rows "
                     "(e.g. skd-neighbours:ls-matched)")
        for name in (method, reference):
            if name not in known:
                sys.exit(f"make-tables: --compare {pair}: no results for '{name}'; the rows are: {', '.join(known)}")
        if reference == baseline:
            sys.exit(f"make-tables: --compare {pair}: every row is already tested against the baseline "
                     f"'{baseline}' (--significance)")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", help="write the Markdown here as well as to stdout")
    parser.add_argument("--flags", action="store_true")
    parser.add_argument("--baseline", default="baseline")
    parser.add_argument("--significance", action="store_true")
    parser.add_argument("--compare", action="append", default=[], metavar="METHOD:REFERENCE")
    parser.add_argument("--plot")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--training-metrics", action="store_true")
    args = parser.parse_args()

    if args.compare and not args.significance:
        parser.error("--compare adds significance tests against another row: it needs --significance")
    results = load(args.results)
    check_rows(results)
    if (args.significance or args.cost) and args.baseline not in {r["method"] for r in results}:
        sys.exit(f"make-tables: no results for the baseline '{args.baseline}' (--significance and --cost "
                 f"compare with it); the rows are: {', '.join(dict.fromkeys(r['method'] for r in results))}; "
                 "name another with --baseline")
    compared = comparisons(args.compare, results, args.baseline)
    translation = [r for r in results if "bleu" in r["metrics"]]
    lm = [r for r in results if "ppl" in r["metrics"]]
    lines = []
    cost = Cost(results, args.baseline) if args.cost else None
    extra = [cost.column()] if cost else []
    if args.training_metrics:
        extra += training_metric_columns(results)
    if translation:
        metrics = [("BLEU", "bleu", 2), ("chrF", "chrf", 2)]
        if any("valid_ppl" in r["metrics"] for r in translation):  # scripts/validation_perplexity.py
            metrics.append(("valid perplexity", "valid_ppl", 2))
        kinds = sorted({r["metrics"]["bleu_tokenized_kind"] for r in translation if "bleu_tokenized" in r["metrics"]})
        if kinds:  # the literature's tokenised BLEU (e.g. compound-split for WMT'14 en-de)
            metrics.append((f"tokenised BLEU ({', '.join(kinds)})", "bleu_tokenized", 2))
        lines += table(translation, metrics, args.flags, extra) + respelled_note(translation)
        signatures = sorted({r["metrics"]["bleu_signature"] for r in translation}
                            | {r["metrics"]["chrf_signature"] for r in translation})
        lines += ["", "sacrebleu signatures: " + "; ".join(f"`{s}`" for s in signatures)]
        tokenized = sorted({r["metrics"]["bleu_tokenized_signature"] for r in translation
                            if "bleu_tokenized" in r["metrics"]})
        if tokenized:
            lines += ["", "tokenised BLEU signature (on the tokenised hypotheses and references): "
                      + "; ".join(f"`{s}`" for s in tokenized)]
        if args.significance:
            tested = [("BLEU", "bleu", 2), ("chrF", "chrf", 2)]
            tested += [("valid perplexity", "valid_ppl", 2)] if any("valid_ppl" in r["metrics"] for r in translation) else []
            lines += significance_sections(translation, args.baseline, compared, significance, tested)
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
