#!/usr/bin/env python
"""Cut a run trained by epochs back to an earlier epoch, as if it had stopped there.

  skd-fairseq-cut-run RUN_DIR --epoch E

For a run of scripts/train.sh that kept its epoch checkpoints and went past epoch E
(e.g. the run whose validation curve chose E): checkpoint{E}.pt becomes
checkpoint_last.pt, checkpoint_best.pt becomes the best epoch up to E by validation
loss (removed when that epoch's checkpoint is gone), the epoch checkpoints after E are
deleted, train.log ends with epoch E (the whole log is kept as train.full.log) and
train.json's updates, wall time and tokens/s are those of epoch E's end (it records
cut_at_epoch; peak memory stays that of the whole run). The learning-rate schedules of
these configs depend on the update count only and the data order on the epoch, so the
result is the run that --max-epoch E would have trained. scripts/train.sh with
--max-epoch E then has nothing left to do, and the evaluations average the last
epochs up to E.
"""

import argparse
import json
import os
import re
import shutil

from skd_experiments import fairseq_log
from skd_experiments.choose_epochs import validation_curve
from skd_experiments.run_and_measure import fairseq_stats


def epoch_end(lines, epoch):
    """The index of the line that ends ``epoch`` (its end-of-epoch training record), or None."""
    for i, line in enumerate(lines):
        record = fairseq_log.parse_line(line)
        if record is not None and record.kind == "train" and record.epoch == epoch:
            return i
    return None


def cut(run_dir, epoch):
    def path(name):
        return os.path.join(run_dir, name)

    if not os.path.exists(path(f"checkpoint{epoch}.pt")):
        raise SystemExit(
            f"cut_run: {path(f'checkpoint{epoch}.pt')} not found: the run must keep its epoch "
            "checkpoints up to that epoch"
        )
    full_log = path("train.full.log") if os.path.exists(path("train.full.log")) else path("train.log")
    with open(full_log) as f:
        lines = f.readlines()
    end = epoch_end(lines, epoch)
    if end is None:
        raise SystemExit(f"cut_run: {full_log} has no end-of-epoch record for epoch {epoch}")
    kept = lines[: end + 1]
    curve = {e: v for e, v in validation_curve(kept).items() if e <= epoch}
    if full_log == path("train.log"):
        shutil.copy(path("train.log"), path("train.full.log"))
    with open(path("train.log"), "w") as f:
        f.writelines(kept)

    for name in os.listdir(run_dir):
        m = re.fullmatch(r"checkpoint(\d+)\.pt", name)
        if m and int(m.group(1)) > epoch:
            os.remove(path(name))
    shutil.copy(path(f"checkpoint{epoch}.pt"), path("checkpoint_last.pt"))
    best = min(curve, key=lambda e: curve[e][0]) if curve else None
    if best is not None and os.path.exists(path(f"checkpoint{best}.pt")):
        shutil.copy(path(f"checkpoint{best}.pt"), path("checkpoint_best.pt"))
    elif os.path.exists(path("checkpoint_best.pt")):
        os.remove(path("checkpoint_best.pt"))
    if os.path.exists(path(".finished")):
        os.remove(path(".finished"))  # train.sh decides again from the checkpoint

    summary = {}
    if os.path.exists(path("train.json")):
        with open(path("train.json")) as f:
            summary = json.load(f)
    summary.update(fairseq_stats("".join(kept)), cut_at_epoch=epoch)
    with open(path("train.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary, best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--epoch", type=int, required=True)
    args = parser.parse_args()
    if args.epoch < 1:
        parser.error("--epoch must be >= 1")
    summary, best = cut(args.run_dir, args.epoch)
    print(
        f"cut_run: {args.run_dir} ends at epoch {args.epoch} ({summary['updates']} updates, "
        f"{summary['fairseq_wall_s']} s of fairseq wall time); best epoch up to it: {best}"
    )


if __name__ == "__main__":
    main()
