#!/usr/bin/env python
"""Choose a training length from a validation curve: the converged-schedule rule.

  skd-fairseq-choose-epochs RUN/train.log [--window 3] [--threshold 0.01] [--cap 30] [--markdown]

Reads the per-epoch validation loss that fairseq-train logged and returns the first
epoch e after which the loss improves by less than THRESHOLD (relative) over the next
WINDOW epochs: (loss[e] - loss[e + WINDOW]) / loss[e] < THRESHOLD; CAP if no epoch up
to CAP - WINDOW qualifies. The run must have been validated every epoch up to at least
e + WINDOW (or CAP). Prints the epoch; --markdown prints the curve as a table with the
relative improvement over the window and the choice.
"""

import argparse
import sys

from skd_experiments import fairseq_log
from skd_experiments.markdown import markdown_table


def validation_curve(lines):
    """{epoch: (loss, ppl)}; a resumed run's repeated epoch keeps its last record."""
    return {r.epoch: (r.get("loss"), r.get("ppl")) for r in fairseq_log.validation_records(lines)}


def improvement(curve, epoch, window):
    """Relative improvement of the validation loss from ``epoch`` to ``epoch + window``."""
    return (curve[epoch][0] - curve[epoch + window][0]) / curve[epoch][0]


def choose_epoch(curve, window=3, threshold=0.01, cap=30):
    """The first epoch whose next ``window`` epochs improve the loss by less than ``threshold``."""
    if not curve:
        raise ValueError("no validation records in the log")
    last = max(curve)
    for epoch in range(1, cap - window + 1):
        if epoch not in curve or epoch + window not in curve:
            missing = epoch if epoch not in curve else epoch + window
            if missing > last:
                raise ValueError(
                    f"the curve stops at epoch {last}: epoch {missing} is needed to decide "
                    f"(train on, up to epoch {min(epoch + window, cap)})"
                )
            raise ValueError(f"epoch {missing} has no validation record")
        if improvement(curve, epoch, window) < threshold:
            return epoch
    if cap not in curve:
        raise ValueError(
            f"no epoch up to {cap - window} meets the rule and the curve stops at epoch {last}: "
            f"train to the cap, epoch {cap}"
        )
    return cap


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--cap", type=int, default=30)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    try:
        with open(args.log) as f:
            curve = validation_curve(f)
    except OSError as err:
        sys.exit(f"choose_epochs: cannot read {args.log}: {err.strerror} (give the train.log of a fairseq-train run)")
    try:
        chosen = choose_epoch(curve, args.window, args.threshold, args.cap)
    except ValueError as err:
        sys.exit(f"choose_epochs: {args.log}: {err}")
    if not args.markdown:
        print(chosen)
        return
    rows = []
    for epoch in sorted(curve):
        gain = f"{100 * improvement(curve, epoch, args.window):.2f} %" if epoch + args.window in curve else "-"
        mark = " **chosen**" if epoch == chosen else ""
        rows.append([f"{epoch}{mark}", f"{curve[epoch][0]:.3f}", f"{curve[epoch][1]:.2f}", gain])
    header = ["epoch", "valid loss (base 2)", "valid ppl", f"improvement over the next {args.window} epochs"]
    print("\n".join(markdown_table(header, rows, align="rrrr")))
    print()
    print(
        f"Chosen: epoch {chosen}, the first after which the validation loss improves by less than "
        f"{100 * args.threshold:g} % over {args.window} epochs (cap {args.cap})."
    )


if __name__ == "__main__":
    main()
