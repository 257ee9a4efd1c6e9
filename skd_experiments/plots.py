"""The validation curves of a result table: perplexity against updates, one line per method."""

import collections
import os
import statistics
import sys

from skd_experiments import fairseq_log
from skd_experiments.tables import benchmark_name, fairseq_options


def logged_loss_factor(result):
    """How many times the model's loss a run's log shows in validation: 2 for fairseq's R-Drop
    criterion with --rdrop-alpha > 0, which scores each validation batch twice (dropout off, so
    two equal copies) and divides by one copy's tokens; 1 otherwise."""
    _, options = fairseq_options(result) or ([], {})
    if options.get("--criterion") != "label_smoothed_cross_entropy_with_rdrop":
        return 1
    return 2 if float(options.get("--rdrop-alpha", 0)) > 0 else 1  # fairseq's default alpha is 0


def validation_curve(run_dir, loss_factor=1):
    """{update: validation perplexity} from the run's train.log (empty without one), corrected for a
    log that shows loss_factor times the loss."""
    path = os.path.join(run_dir, "train.log")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8", errors="replace") as f:
        valid = fairseq_log.validation_records(f)
    return {
        int(r.get("num_updates")): r.get("ppl") ** (1 / loss_factor)
        for r in valid
        if isinstance(r.get("ppl"), float) and isinstance(r.get("num_updates"), float)
    }


def plot(results, path):
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "skd-fairseq-tables --plot needs matplotlib, one of the experiments' dependencies: "
            "pip install 'skd-fairseq[experiments]' (or leave out --plot)"
        ) from None

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
                print(
                    f"make-tables: no validation point common to the {len(curves)} run(s) of {method} "
                    f"(missing or differing train.log); {method} is left out of {path}",
                    file=sys.stderr,
                )
            else:
                ax.plot(
                    updates,
                    [statistics.mean(c[u] for c in curves) for u in updates],
                    marker="o",
                    label=f"{method} (n={len(curves)})",
                )
        ax.set_title(f"{benchmark_name(column)}: validation")
        ax.set_xlabel("updates")
        ax.set_ylabel("validation perplexity (mean over seeds)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
