#!/usr/bin/env python
"""Run a training command quietly and show one progress line for it.

  python -m skd_experiments.follow_training --label NAME --log RUN/train.log --out RUN/FILE -- COMMAND...

The command's own output goes to --out; fairseq's log (--log, written by
scripts/train.sh) is followed and summarised in one line: update (of the total),
training loss (the criterion's own, and the plain NLL that compares across criteria), last
validation perplexity, target tokens/s and the time this model has
left (with --queued N, also the time left for it and the N models queued after it, at
this model's pace). On a
terminal the line is rewritten in place; otherwise (a log file, CI) a line is printed
every --every seconds. When the command fails, the last lines of --out are printed.
The command's exit status is passed on.
"""

import argparse
import os
import subprocess
import sys
import time

from skd_experiments import fairseq_log


class Progress:
    """What the new lines of a fairseq log say so far."""

    def __init__(self):
        self.max_update = self.max_epoch = 0
        self.epoch = self.step = self.steps_per_epoch = 0
        self.values = {}
        self.valid_ppl = None

    def read(self, line):
        limits = None if self.max_update or self.max_epoch else fairseq_log.training_limits(line)
        if limits:
            self.max_update, self.max_epoch = limits["max_update"], limits["max_epoch"]
        record = fairseq_log.parse_line(line)
        if record is None:
            return
        if record.kind == "train_inner":
            self.epoch = record.epoch
            if record.step is not None:  # the simple format counts the epoch's updates
                self.step, self.steps_per_epoch = record.step, record.epoch_steps
            self.values = record.values
        elif record.kind == "train":  # end of an epoch (the only record of a run shorter than --log-interval)
            self.epoch, self.values = record.epoch, record.values
        elif record.kind == "valid" and "ppl" in record.values:
            self.valid_ppl = float(record.get("ppl"))

    def total_updates(self):
        by_epochs = self.max_epoch * self.steps_per_epoch if self.max_epoch and self.steps_per_epoch else 0
        return min(filter(None, [self.max_update, by_epochs]), default=0)

    def line(self, label, elapsed, queued=0):
        if not self.values:
            return f"{label}: starting ({elapsed:.0f} s)"
        updates = int(self.values.get("num_updates", 0))
        total = self.total_updates()
        # "loss" is each criterion's own (SKD's mixes in its soft-target term): the plain NLL beside
        # it is what compares across criteria.
        loss = f"loss {float(self.values['loss']):.3f}"
        if "nll_loss" in self.values:
            loss += f" (criterion's; nll {float(self.values['nll_loss']):.3f})"
        parts = [f"update {updates}" + (f"/{total}" if total else ""), loss]
        if self.valid_ppl is not None:
            parts.append(f"valid ppl {self.valid_ppl:.2f}")
        parts.append(f"{float(self.values.get('wps', 0)):,.0f} tok/s")
        ups = float(self.values.get("ups", 0))
        if total and ups > 0:
            left = max(total - updates, 0) / ups / 60
            parts.append(f"this model {left:.1f} min left")
            if queued:
                parts.append(f"all {queued + 1} models ~{left + queued * total / ups / 60:.0f} min left")
        return f"{label}: " + " | ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True)
    parser.add_argument("--log", required=True, help="the fairseq log the command writes (followed from its end)")
    parser.add_argument("--out", required=True, help="where the command's own output goes")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between lines when not on a terminal")
    parser.add_argument("--tail", type=int, default=30, help="lines of --out shown when the command fails")
    parser.add_argument("--queued", type=int, default=0, help="models that train after this one, at its pace")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")

    start_at = os.path.getsize(args.log) if os.path.exists(args.log) else 0  # a resumed run appends
    tty = sys.stdout.isatty()
    progress, position, last_print, started = Progress(), start_at, 0.0, time.time()
    with open(args.out, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while True:
            status = proc.poll()
            if os.path.exists(args.log):
                with open(args.log, "rb") as log:
                    log.seek(position)
                    chunk = log.read()
                # Only whole lines; a partial last line is read again next time.
                complete = chunk[: chunk.rfind(b"\n") + 1]
                position += len(complete)
                for line in complete.decode("utf-8", errors="replace").splitlines():
                    progress.read(line)
            now = time.time()
            text = progress.line(args.label, now - started, args.queued)
            if tty:
                sys.stdout.write("\r\033[K" + text)
                sys.stdout.flush()
            elif status is not None or now - last_print >= args.every:
                print(text, flush=True)
                last_print = now
            if status is not None:
                break
            time.sleep(1.0)
    if tty:
        sys.stdout.write("\n")
    if status != 0:
        with open(args.out, errors="replace") as f:
            lines = f.readlines()[-args.tail :]
        print(
            f"{args.label}: failed (exit status {status}); the last {len(lines)} lines of {args.out}:", file=sys.stderr
        )
        sys.stderr.writelines(lines)
    sys.exit(status)


if __name__ == "__main__":
    main()
