#!/usr/bin/env python
"""Run a fairseq-train command, copy its output to a log, and write a JSON summary of the run.

  python -m skd_experiments.run_and_measure --log FILE --summary FILE [--meta key=value ...] -- COMMAND...

The summary holds the command, the git commit (and, for a run resumed after the code changed,
every commit it was trained with), the wall time of this invocation and
of all invocations of a resumed run, the peak memory, and what fairseq's log reports:
updates, its cumulative training wall time (across resumptions) and the median words
(target tokens) per second. Peak memory: the command's processes' peak resident set on
the host (the largest over invocations) and, when the run used a GPU, the largest
``torch.cuda.max_memory_allocated`` of its processes (reported by the plugin, see
``skd_fairseq/cuda_peak.py``); ``peak_memory_mib`` is the GPU's when there is one.
The command's exit status is passed on.

An invocation that is killed (a machine or session that ends) writes no summary. So that it
still counts, each invocation leaves a marker beside the summary (SUMMARY.running: its start and
commit) that it removes when it ends; the next invocation that finds one counts it in
``invocations`` and ``interrupted_invocations``, adds its commit, and records what is unknown as
unknown: its wall time (``all_invocations_wall_s`` null) and its peak memory. fairseq's own
training wall time (``fairseq_wall_s``, from the log) covers it.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from skd_experiments import fairseq_log


def fairseq_stats(log_text):
    """Updates, training wall time and median tokens/s from fairseq's log (all invocations).

    fairseq restarts its ``wall`` clock when it resumes from a checkpoint, so the time of an
    earlier invocation is added up to the update the next one resumed from: work done after
    that checkpoint was lost and redone, and is not counted twice."""
    inner_wps, epoch_wps, updates, wall = [], [], None, None
    earlier, invocation = 0.0, []  # earlier invocations' time; (updates, wall) of this one
    for line in log_text.splitlines():
        resumed = fairseq_log.resumed_at(line)
        if resumed is not None and invocation:
            earlier += max((w for u, w in invocation if u <= resumed), default=0.0)
            invocation = []
        record = fairseq_log.parse_line(line)
        if record is None or record.kind not in ("train_inner", "train"):
            continue
        # "wall": the run's clock, not the per-interval "train_wall" logged beside it.
        if any(not isinstance(record.get(k), float) for k in ("wps", "num_updates", "wall")):
            continue
        (inner_wps if record.kind == "train_inner" else epoch_wps).append(record.get("wps"))
        invocation.append((int(record.get("num_updates")), record.get("wall")))
        updates, wall = invocation[-1][0], earlier + invocation[-1][1]
    wps = inner_wps or epoch_wps  # per log interval if there were any, else per epoch
    return {
        "updates": updates,
        "fairseq_wall_s": wall,
        "tokens_per_s": statistics.median(wps) if wps else None,
    }


def read_cuda_peak_mib(path):
    """The largest peak the run's processes wrote to ``path`` (MiB), or None."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        peaks = [json.loads(line)["peak_bytes"] for line in f if line.strip()]
    return round(max(peaks) / 2**20, 1) if peaks else None


def git_commit(cwd):
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=cwd)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=cwd
        ).stdout.strip()
        return (out.stdout.strip() + ("-dirty" if dirty else "")) or None
    except OSError:
        return None


def trained_with(previous, commit):
    """The commits a run was trained with, oldest first: a run resumed after the code changed
    keeps the commit its earlier invocations ran (``commit`` alone names the latest)."""
    earlier = previous.get("commits") or [previous.get("commit")]
    return [c for c in dict.fromkeys([*earlier, commit]) if c]


def with_interrupted(previous, marker):
    """PREVIOUS (the summary so far, {} for none) with the killed invocation that left MARKER
    (its {"started", "commit"}) counted: its wall time and peak memory unknown."""
    counted = dict(previous)
    counted["invocations"] = previous.get("invocations", 1 if previous else 0) + 1
    counted["interrupted_invocations"] = previous.get("interrupted_invocations", 0) + 1
    counted["commits"] = trained_with(previous, marker.get("commit"))
    counted.update(all_invocations_wall_s=None, invocation_wall_s=None, peak_rss_mib=None, peak_memory_mib=None)
    return counted


def parse_command_line():
    """(the arguments, the command to run: what follows ``--``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--meta", nargs="*", default=[], help="key=value pairs stored in the summary")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    return args, command


def earlier_invocations(summary_path, marker):
    """The summary of the run's earlier invocations ({} for none), with the killed invocation that
    left ``marker`` counted."""
    previous = {}
    if os.path.exists(summary_path):  # a resumed run: its earlier invocations count too
        with open(summary_path) as f:
            previous = json.load(f)
    if os.path.exists(marker):  # the last invocation was killed before it could write the summary
        with open(marker) as f:
            previous = with_interrupted(previous, json.load(f))
    return previous


def remove_if_present(path):
    if os.path.exists(path):
        os.remove(path)


def write_marker(marker, start, commit):
    """The marker of a running invocation: its start and the commit it runs."""
    with open(marker, "w") as f:
        json.dump({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)), "commit": commit}, f)


def run_logged(command, log_path, env):
    """Run ``command``, its output copied to stdout and appended to ``log_path``; its exit status."""
    with open(log_path, "a", buffering=1) as log:  # line-buffered: the log is followed live
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
        )
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        return proc.wait()


def peak_memory_entries(previous, cuda_file):
    """The summary's peak-memory entries over all invocations, once the command has ended: the
    host resident set of its processes and the GPU peak they wrote to ``cuda_file``."""
    peak_rss = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    if previous and previous.get("peak_rss_mib") is None:
        peak_rss = None  # an earlier invocation's peak was lost: this one's alone would understate it
    else:
        peak_rss = max(peak_rss, previous.get("peak_rss_mib") or 0)
    cuda_peak = max(filter(None, [read_cuda_peak_mib(cuda_file), previous.get("cuda_peak_mib")]), default=None)
    return {
        "peak_rss_mib": peak_rss,
        "cuda_peak_mib": cuda_peak,
        "peak_memory_mib": cuda_peak if cuda_peak is not None else peak_rss,
        "peak_memory_kind": "GPU (torch.cuda.max_memory_allocated)" if cuda_peak is not None else "host resident set",
    }


def run_summary(previous, meta, command, commit, status, wall, memory, stats):
    """The summary of the run: the history ``previous`` keeps, the ``--meta`` pairs, and this
    invocation (exit ``status``, ``wall`` seconds) added to the earlier ones."""
    # What an earlier step wrote about the run's history (cut_run.py, a rebuilt summary, a killed invocation) stays.
    summary = {key: previous[key] for key in ("note", "cut_at_epoch", "interrupted_invocations") if key in previous}
    summary.update(kv.split("=", 1) for kv in meta)
    summary.update(
        command=command,
        commit=commit,
        commits=trained_with(previous, commit),
        exit_status=status,
        invocation_wall_s=round(wall, 1),
        invocations=previous.get("invocations", 1 if previous else 0) + 1,
        all_invocations_wall_s=None
        if previous.get("interrupted_invocations")  # an interrupted invocation's time is unknown
        else round(wall + (previous.get("all_invocations_wall_s") or previous.get("invocation_wall_s") or 0), 1),
        # CPU threads of the run: a table states how its runs were trained, not how it was built.
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        **memory,
        **stats,
    )
    return summary


def main():
    args, command = parse_command_line()
    marker = args.summary + ".running"
    previous = earlier_invocations(args.summary, marker)
    cuda_file = args.summary + ".cuda-peak"
    remove_if_present(cuda_file)
    # Imported here: the plugin's package imports fairseq, which the other functions of this
    # module (read by the tables) do not need.
    from skd_fairseq import CUDA_PEAK_ENV

    env = dict(os.environ, **{CUDA_PEAK_ENV: cuda_file})

    commit = git_commit(os.path.dirname(os.path.abspath(__file__)))  # the code this run starts with
    start = time.time()
    write_marker(marker, start, commit)
    status = run_logged(command, args.log, env)
    wall = time.time() - start
    memory = peak_memory_entries(previous, cuda_file)
    remove_if_present(cuda_file)

    with open(args.log) as log:
        stats = fairseq_stats(log.read())
    summary = run_summary(previous, args.meta, command, commit, status, wall, memory, stats)
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=1)
    os.remove(marker)
    sys.exit(status)


if __name__ == "__main__":
    main()
