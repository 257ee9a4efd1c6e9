"""Writing a run's result file (``result.SPLIT.json``), shared by the evaluation scripts.

A result file holds the evaluation (dataset, pair, split, metrics, signatures) and, at
its top level, what identifies and measures the run it scores, taken from the run's
``train.json`` (skd_experiments/run_and_measure.py): method, flags, seed, updates, training wall
time, target tokens/s, peak memory and the training commit; the whole ``train.json``
is kept under ``training``. ``evaluation_commit`` is the commit that scored it.
"""

import json
import os

from skd_experiments.run_and_measure import git_commit


def run_fields(training):
    """The top-level fields of a result file, from a run's train.json summary."""
    # --data: the last two parts of the path (e.g. distilled/bin) keep tables readable.
    data = (
        f"--data {os.path.join(*os.path.normpath(training['data']).split(os.sep)[-2:])}" if training.get("data") else ""
    )
    # --teacher-cache: the cache directory's name and the K teacher tokens it keeps (the teacher
    # presets read it instead of the teacher, and then learn from the top K, not all of V).
    cache = training.get("teacher_cache")
    if cache:
        topk = training.get("teacher_cache_topk")
        cache = f"--teacher-cache {os.path.basename(os.path.normpath(cache))}" + (f" (top {topk})" if topk else "")
    return {
        "method": training.get("method") or training.get("preset"),
        "flags": " ".join(filter(None, [training.get("preset"), training.get("extra_flags"), data, cache or ""])),
        "seed": int(training["seed"]) if str(training.get("seed", "")).isdigit() else training.get("seed"),
        "updates": training.get("updates"),
        "wall_time_s": training.get("fairseq_wall_s"),
        "tokens_per_s": training.get("tokens_per_s"),
        "peak_memory_mib": training.get("peak_memory_mib", training.get("peak_rss_mib")),
        "peak_memory_kind": training.get("peak_memory_kind", "host resident set"),
        "commit": training.get("commit"),
    }


def write_result(path, result, train_summary=None):
    """Write ``result`` to ``path`` with the run's fields from ``train_summary`` (a train.json)."""
    if train_summary and os.path.exists(train_summary):
        with open(train_summary) as f:
            training = json.load(f)
        result = {**result, **run_fields(training), "training": training}
    result["evaluation_commit"] = git_commit(os.path.dirname(os.path.abspath(__file__)))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return result
