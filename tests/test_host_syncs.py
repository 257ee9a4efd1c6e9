"""No hidden host-device sync in a steady-state training step, proven on the CPU.

Each path runs a few warm-up steps (every word seen as a target, the neighbour table built),
then one steady step (forward and backward, no table refresh due) under
:class:`host_syncs.HostSyncs`, which counts the calls of the plugin's own code that would block a
GPU's host. A full softmax and the KD criteria make none; an adaptive softmax makes exactly one,
the grouping of positions by cluster that its tail projections need (fairseq's adaptive_loss
makes one per cluster). The CUDA test (tests/test_cuda.py) checks the same on a GPU with torch's
sync debug mode.
"""

import pytest
import torch
from conftest import (
    TINY_ADAPTIVE_LM,
    build_language_model,
    build_translation,
    lm_sample,
    save_teacher,
    translation_sample,
)
from host_syncs import HostSyncs

SKD = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0.1"]
SKD_LM = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0"]
# The one grouping of positions by cluster an adaptive softmax's projections need.
GROUPING = ("tolist", "skd_fairseq/adaptive.py")
WARMUP = 8


def steady_step_syncs(criterion, model, samples):
    """Syncs of the plugin in the step after ``len(samples) - 1`` warm-up steps."""
    model.train()
    for update, sample in enumerate(samples[:-1]):
        criterion.set_num_updates(update)
        loss, _, _ = criterion(model, sample)
        loss.backward()
    criterion.set_num_updates(len(samples) - 1)
    with HostSyncs() as syncs:
        loss, _, _ = criterion(model, samples[-1])
        loss.backward()
    return syncs.calls


FULL_SOFTMAX = {
    "neighbours": ["--skd-candidates", "neighbours"],
    "neighbours-include-unseen": ["--skd-candidates", "neighbours", "--skd-include-unseen"],
    "random": ["--skd-candidates", "random"],
    "random-include-unseen": ["--skd-candidates", "random", "--skd-include-unseen"],
    "predicted": ["--skd-candidates", "predicted"],
    "predicted-include-unseen": ["--skd-candidates", "predicted", "--skd-include-unseen"],
    "top1-distance": [
        *("--skd-weighting", "distance", "--skd-candidates", "predicted", "--skd-topk", "1"),
        *("--skd-sigma", "0.5", "--skd-alpha", "1"),
    ],
    "top1-distance-exclude-unseen": [
        *("--skd-weighting", "distance", "--skd-candidates", "predicted", "--skd-topk", "1"),
        *("--skd-sigma", "0.5", "--skd-alpha", "1", "--skd-exclude-unseen"),
    ],
    "fixed-temperature": ["--skd-temperature", "0.5"],
}


@pytest.mark.slow
@pytest.mark.parametrize("flags", FULL_SOFTMAX.values(), ids=FULL_SOFTMAX.keys())
def test_a_full_softmax_step_makes_no_sync(tmp_path, fresh_metrics, flags):
    task, model, criterion, _ = build_translation(tmp_path, SKD + flags)
    samples = [translation_sample(task, seed=seed) for seed in range(WARMUP)]
    assert steady_step_syncs(criterion, model, samples) == {}


ADAPTIVE = {
    f"{mode}-{candidates}{unseen}": [
        *("--skd-candidates", candidates, "--skd-adaptive-candidates", mode),
        *(["--skd-include-unseen"] if unseen else []),
    ]
    for mode in ("cluster", "any")
    for candidates in ("neighbours", "random", "predicted")
    for unseen in ("", "-include-unseen")
}


@pytest.mark.slow
@pytest.mark.parametrize("flags", ADAPTIVE.values(), ids=ADAPTIVE.keys())
def test_an_adaptive_softmax_step_makes_only_the_cluster_grouping(tmp_path, fresh_metrics, flags):
    task, model, criterion, _ = build_language_model(tmp_path, SKD_LM + flags)
    samples = [lm_sample(task, seed=seed) for seed in range(WARMUP)]
    syncs = steady_step_syncs(criterion, model, samples)
    assert sum(syncs.values()) == 1, syncs
    ((op, where),) = syncs
    assert (op, where.split(":")[0]) == GROUPING, syncs


KD = {
    "word-kd": ["--criterion", "label_smoothed_word_kd"],
    "word-kd-topk": ["--criterion", "label_smoothed_word_kd", "--kd-teacher-topk", "5", "--kd-temperature", "2"],
    "skd-word-kd": ["--criterion", "label_smoothed_word_kd", "--skd-alpha", "0.5"],
    "skd-word-kd-predicted": [
        "--criterion",
        "label_smoothed_word_kd",
        "--skd-alpha",
        "0.5",
        "--skd-candidates",
        "predicted",
    ],
    "tie-kd": ["--criterion", "label_smoothed_tie_kd", "--tie-topk", "3", "--tie-iterations", "2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("flags", KD.values(), ids=KD.keys())
def test_a_kd_criterion_step_makes_no_sync(tmp_path, fresh_metrics, flags):
    teacher, _ = save_teacher(tmp_path / "teacher", seed=1)
    (tmp_path / "student").mkdir()
    task, model, criterion, _ = build_translation(
        tmp_path / "student", ["--label-smoothing", "0.1", *flags, "--kd-teacher-path", teacher]
    )
    samples = [translation_sample(task, seed=seed) for seed in range(WARMUP)]
    assert steady_step_syncs(criterion, model, samples) == {}


@pytest.mark.slow
@pytest.mark.parametrize("teacher", ["twin", "ema"])
def test_a_self_kd_step_makes_no_sync(tmp_path, fresh_metrics, teacher):
    flags = ["--criterion", "label_smoothed_self_kd", "--label-smoothing", "0.1", "--self-kd-teacher", teacher]
    task, model, criterion, _ = build_translation(tmp_path, flags + ["--dropout", "0.3"])
    samples = [translation_sample(task, seed=seed) for seed in range(WARMUP)]
    assert steady_step_syncs(criterion, model, samples) == {}


def test_a_ps_kd_step_makes_no_sync(tmp_path, fresh_metrics):
    task, model, criterion, _ = build_translation(
        tmp_path, ["--criterion", "label_smoothed_ps_kd", "--label-smoothing", "0.1", "--max-epoch", "4"]
    )
    criterion.begin_epoch(1, model)
    criterion.begin_epoch(2, model)  # the teacher: the model at the end of epoch 1
    samples = [translation_sample(task, seed=seed) for seed in range(WARMUP)]
    assert steady_step_syncs(criterion, model, samples) == {}


@pytest.mark.slow
def test_a_cached_teacher_step_makes_no_sync(tmp_path, fresh_metrics):
    from conftest import build_for_training
    from test_teacher_cache import TINY_TRANSFORMER, TRANSLATION, build_cache, train_batch, translation_data

    data = translation_data(tmp_path / "data")
    teacher, _ = save_teacher(tmp_path / "teacher", seed=1)
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    flags = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0.1", "--kd-teacher-cache", cache]
    task, model, criterion, _ = build_for_training(data, *TRANSLATION, *TINY_TRANSFORMER, *flags)
    sample = train_batch(task)
    assert steady_step_syncs(criterion, model, [sample] * 3) == {}


WORD_KD_LM = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0", "--kd-weight", "0.5"]
# A teacher term on an adaptive-softmax student (its top K: --kd-teacher-topk or the cache's), and
# where its teacher comes from. "any" candidates take the path that groups SKD's entries, the gold
# words and the teacher's top K together.
ADAPTIVE_TEACHER_TERMS = {
    "word-kd-online": (WORD_KD_LM, "online"),
    "word-kd-cached": (WORD_KD_LM, "cached"),
    "skd-word-kd-cached": ([*WORD_KD_LM, "--skd-alpha", "0.5"], "cached"),
    "skd-word-kd-any-online": ([*WORD_KD_LM, "--skd-alpha", "0.5", "--skd-adaptive-candidates", "any"], "online"),
    "self-kd-twin": (["--criterion", "label_smoothed_self_kd", "--self-kd-teacher", "twin"], "itself"),
    "self-kd-ema": (["--criterion", "label_smoothed_self_kd", "--self-kd-teacher", "ema"], "itself"),
    "ps-kd": (["--criterion", "label_smoothed_ps_kd", "--max-epoch", "4"], "previous epoch"),
}


@pytest.mark.slow
@pytest.mark.parametrize("flags, source", ADAPTIVE_TEACHER_TERMS.values(), ids=ADAPTIVE_TEACHER_TERMS.keys())
def test_a_teacher_term_on_an_adaptive_softmax_makes_only_the_cluster_grouping(tmp_path, fresh_metrics, flags, source):
    """The teacher's top K on an adaptive-softmax student (a teacher run online or read from its
    cache, self-KD's twin or moving average, PS-KD's previous epoch): the student's grouping of
    positions by cluster is the step's one sync; the teacher term, and SKD inside it, add none."""
    from conftest import build_for_training
    from test_teacher_cache import LM_TASK, build_cache, lm_data, save_lm_teacher, train_batch

    data = lm_data(tmp_path / "lm")
    flags = [*flags, "--label-smoothing", "0"]
    if source == "cached":
        teacher = save_lm_teacher(tmp_path / "teacher", data)
        layout = ["--tokens-per-sample", "16", "--topk", "4"]
        flags += ["--kd-teacher-cache", build_cache(data, teacher, tmp_path / "cache", *LM_TASK[:2], *layout)]
    else:
        if source == "online":
            flags += ["--kd-teacher-path", save_lm_teacher(tmp_path / "teacher", data)]
        flags += ["--kd-teacher-topk", "4"]
    task, model, criterion, _ = build_for_training(data, *LM_TASK, *TINY_ADAPTIVE_LM, *flags)
    if source == "previous epoch":
        criterion.begin_epoch(1, model)
        criterion.begin_epoch(2, model)  # the teacher: the model at the end of epoch 1
    syncs = steady_step_syncs(criterion, model, [train_batch(task)] * WARMUP)
    assert sum(syncs.values()) == 1, syncs
    ((op, where),) = syncs
    assert (op, where.split(":")[0]) == GROUPING, syncs


def test_the_counter_sees_what_would_sync(tmp_path, fresh_metrics):
    """A positive control: a neighbour-table refresh with the exclusion of unseen targets reads the
    seen counts on the host (documented: a refresh step syncs), and the counter says so."""
    task, model, criterion, _ = build_translation(tmp_path, SKD + ["--skd-neighbour-refresh", "2"])
    samples = [translation_sample(task, seed=seed) for seed in range(WARMUP + 1)]  # update 8: a refresh
    syncs = steady_step_syncs(criterion, model, samples)
    assert ("tolist", "skd_fairseq/criterions/candidate_state.py") in {(op, w.split(":")[0]) for op, w in syncs}
    with HostSyncs() as direct:
        torch.arange(3).tolist()  # not the plugin's: not counted
    assert direct.calls == {}
