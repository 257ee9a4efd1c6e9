"""The result tables: rows of methods, columns of benchmarks, cells of means over seeds.

A row's runs share one setting (their flags, or the same fairseq options spelled
otherwise); each cell is the mean +- standard deviation over seeds. Beside the scores:
the training cost per method and the training metrics the criteria logged.
"""

import collections
import json
import os
import re
import statistics
import sys

from skd_experiments import fairseq_log
from skd_experiments.markdown import markdown_table
from skd_experiments.results import run_fields


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
        if result.get("decoding") == "greedy":  # its own benchmark column beside beam search's
            result["split"] = f"{result['split']} greedy"
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
            (setting := fairseq_setting(r)) is None or setting != fairseq_setting(first)
        ):
            sys.exit(
                f"make-tables: '{r['method']}' has runs with different settings: `{first['settings']}` "
                f"({first['run_dir']}) and `{r['settings']}` ({r['run_dir']}); a row averages one "
                "setting's seeds: give the other setting its own row (train.sh --method NAME, or "
                "sweep.sh --variant NAME=...)"
            )
        key = (r["method"], r["dataset"], r["pair"], r["split"], r.get("seed"))
        if key in seen:
            sys.exit(
                f"make-tables: two results for {r['method']} seed {r.get('seed')} on "
                f"{benchmark_name(key[1:4])}: {seen[key]} and {r['run_dir']}; pass each run once"
            )
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
    return [
        "",
        "Same setting, other flags: " + "; ".join(runs) + " (the same fairseq options apart from "
        "the seed and the directories; each run's command is in its train.json).",
    ]


def cell(values, digits=2):
    if not values:
        return "-"
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def benchmark_name(column):
    return " ".join(filter(None, column))


def benchmark_and_metric(column, label):
    """("DATASET PAIR SPLIT", METRIC); a metric of the validation split ("valid perplexity", beside
    test BLEU) names its own split: ("DATASET PAIR valid", "perplexity")."""
    if label.startswith("valid "):
        return benchmark_name((*column[:2], "valid")), label[len("valid ") :]
    return benchmark_name(column), label


def column_header(column, label):
    return "{}: {}".format(*benchmark_and_metric(column, label))


def table(results, metrics, show_flags, extra_columns=()):
    """One Markdown table: rows methods, columns (benchmark x metric), then extra_columns:
    (header, method -> text) pairs."""
    columns = sorted({(r["dataset"], r["pair"], r["split"]) for r in results})
    methods = list(dict.fromkeys(r["method"] for r in results))
    settings = {r["method"]: r["settings"] for r in results}
    by = collections.defaultdict(list)
    for r in results:
        by[(r["method"], r["dataset"], r["pair"], r["split"])].append(r)
    # header -> (metric key, digits, column); a validation-split metric of the runs (their valid
    # perplexity) once, not once per decoding of the test split.
    shown = {}
    for label, key, digits in metrics:
        for c in columns:
            shown.setdefault(column_header(c, label), (key, digits, c))
    header = ["method"] + (["settings"] if show_flags else [])
    header += list(shown)
    header += [title for title, _ in extra_columns]
    rows = []
    for m in methods:
        row = [m] + ([f"`{settings[m]}`"] if show_flags else [])
        for key, digits, c in shown.values():
            row.append(cell([x["metrics"][key] for x in by[(m, *c)] if key in x["metrics"]], digits))
        row += [text(m) for _, text in extra_columns]
        rows.append(row)
    return markdown_table(header, rows)


def benchmark_cost_column(path, methods):
    """The cost column from an interleaved ``benchmarks/bench_train.py`` report (its JSON): each
    row's step-time and peak-memory ratios to the report's first variant, read from the variant of
    the row's name ("-" where the report has none). Stops when it names none of the rows."""
    with open(path) as f:
        report = json.load(f)
    if report.get("benchmark") != "bench_train":
        sys.exit(f"make-tables: --cost-from {path} is not a bench_train.py report")
    variants = {v["variant"]: v for v in report["variants"] if "step_time_ratio" in v}
    if not set(methods) & set(variants):
        sys.exit(
            f"make-tables: --cost-from {path} measures {', '.join(variants)}, none of the rows "
            f"({', '.join(methods)}); name its variants after the rows (bench_train.py --variant ROW=...)"
        )
    base = report["variants"][0]["variant"]

    def text(method):
        v = variants.get(method)
        return "-" if v is None else f"{v['step_time_ratio']:.3f} / {v['peak_memory_ratio']:.3f}"

    return f"cost vs {base} (bench_train, interleaved): step time × / memory ×", text


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
        return (
            f"cost vs {self.baseline}: time × / memory ×",
            lambda m: f"{self.ratio(m, 'wall_time_s')} / {self.ratio(m, 'peak_memory_mib')}",
        )

    def table(self):
        def plain(value, digits):
            return "-" if value is None else f"{value:,.{digits}f}"

        header = ["method", "train wall s", "×", "peak memory MiB", "×", "target tokens/s", "×"]
        rows = [
            [m]
            + [
                text
                for key in ("wall_time_s", "peak_memory_mib", "tokens_per_s")
                for text in (plain(self.mean(m, key), 0), self.ratio(m, key))
            ]
            for m in self.by
        ]
        return [
            f"Training cost (means over seeds; ratios to {self.baseline}; peak memory: {self.memory_kind}):",
            "",
            *markdown_table(header, rows),
        ]


def log_records(run_dir):
    """The progress records of the run's train.log, in order (none without a log)."""
    path = os.path.join(run_dir, "train.log")
    return fairseq_log.read_records(path) if os.path.exists(path) else []


# Training metrics the criteria log per epoch, shown as "first value -> last value" columns:
# SKD's gold mass and temperature (softmax weighting), its distance weight and how often the
# top-1 prediction is the gold token (distance weighting), and the teacher term's weight (PS-KD's
# a_t, word-KD's beta, self-KD's alpha_t; runs trained before commit d3ec8db log it for PS-KD only).
TRAINING_METRICS = ("skd_gold_q", "skd_tau", "skd_weight", "skd_top1_gold", "kd_weight")


def training_metrics(run_dir, names=TRAINING_METRICS):
    """{name: (first epoch, its value, the last epoch's value)} from the run's train.log epoch
    summaries (the first epoch that logged the metric: SKD that starts late logs it later)."""
    epochs = {
        r.epoch: {k: v for k, v in r.values.items() if isinstance(v, float)}
        for r in log_records(run_dir)
        if r.kind == "train"
    }
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
