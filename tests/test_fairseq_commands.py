"""The real fairseq-train / fairseq-generate / fairseq-eval-lm commands on tiny slices of ../shared/data."""

import re

import pytest
import torch
from conftest import SMALL_TRANSFORMER, USER_DIR, run

from skd_experiments import fairseq_log
from skd_fairseq.schedule import skd_alpha

TRANSLATION_MODEL = ["--task", "translation", "-s", "de", "-t", "en", *SMALL_TRANSFORMER]
LM_MODEL = [
    "--task",
    "language_modeling",
    "--arch",
    "transformer_lm",
    "--decoder-layers",
    "1",
    "--decoder-embed-dim",
    "64",
    "--decoder-ffn-embed-dim",
    "128",
    "--decoder-attention-heads",
    "2",
    "--share-decoder-input-output-embed",
    "--tokens-per-sample",
    "64",
    "--sample-break-mode",
    "none",
]
OPTIMISATION = [
    "--optimizer",
    "adam",
    "--adam-betas",
    "(0.9, 0.98)",
    "--lr",
    "2e-3",
    "--lr-scheduler",
    "inverse_sqrt",
    "--warmup-updates",
    "10",
    "--dropout",
    "0.1",
    "--max-tokens",
    "1024",
    "--cpu",
    "--seed",
    "1",
    "--num-workers",
    "0",
    "--log-format",
    "json",
    "--log-interval",
    "1",
    "--no-epoch-checkpoints",
    "--required-batch-size-multiple",
    "1",
]
SKD = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0.1"]
WORD_KD = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0.1"]


def train(data, save_dir, *args, check=True, fork=True):
    command = ["fairseq-train", data, "--user-dir", USER_DIR, "--save-dir", save_dir, *OPTIMISATION, *args]
    return run(command, check=check, fork=fork)


def eval_lm_perplexity(data, checkpoint):
    """The perplexity fairseq-eval-lm reports for a checkpoint of the tests' 64-token LMs."""
    args = ["--tokens-per-sample", "64", "--context-window", "32", "--max-tokens", "2048", "--cpu"]
    ev = run(["fairseq-eval-lm", data, "--user-dir", USER_DIR, "--path", checkpoint, *args])
    ppl = re.search(r"Perplexity: ([0-9.]+)", ev.stdout + ev.stderr)
    assert ppl, ev.stderr[-2000:]
    return float(ppl.group(1))


def train_logs(output):
    """The per-update train_inner records of a run's log (skd_experiments.fairseq_log reads it)."""
    return [
        dict(r.values, epoch=float(r.epoch))
        for r in fairseq_log.records(output.splitlines())
        if r.kind == "train_inner"
    ]


def assert_loss_goes_down(records):
    losses = [r["loss"] for r in records]
    assert len(losses) >= 20
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.5, f"training loss did not go down: {first:.3f} -> {last:.3f}"


@pytest.mark.slow
def test_user_dir_command_prints_the_package_directory():
    out = run(["skd-fairseq-user-dir"]).stdout.strip()
    assert out == USER_DIR


@pytest.mark.slow
@pytest.mark.parametrize("candidates", ["neighbours", "predicted"])
def test_translation_trains_and_generates(multi30k_bin, tmp_path, candidates):
    user_dir = run(["skd-fairseq-user-dir"]).stdout.strip()
    # neighbours: the criterion's defaults alone, which are the validated setting (alpha 0.5, k 8,
    # a gold mass of 0.75, candidates among the tokens seen as targets).
    flags = (
        []
        if candidates == "neighbours"
        else ["--skd-candidates", candidates, "--skd-alpha", "0.5", "--skd-topk", "4", "--skd-temperature", "1"]
    )
    proc = run(
        [
            "fairseq-train",
            multi30k_bin / "bin",
            "--user-dir",
            user_dir,
            "--save-dir",
            tmp_path,
            *OPTIMISATION,
            *TRANSLATION_MODEL,
            *SKD,
            *flags,
            "--max-update",
            "40",
        ]
    )
    records = train_logs(proc.stdout)
    assert_loss_goes_down(records)
    assert all(r["skd_alpha"] == 0.5 and 0 < r["skd_gold_q"] < 1 for r in records)
    if candidates == "neighbours":
        assert all(r["skd_gold_q"] == pytest.approx(0.75, abs=1e-4) and r["skd_tau"] > 0 for r in records)
    assert "skd_loss" in records[-1]
    if candidates != "neighbours":
        return  # the checkpoint is the same kind of file whatever the candidates: generate once
    # torch >= 2.6 loads with weights_only=True; the plugin allow-lists what fairseq stores.
    gen = run(
        [
            "fairseq-generate",
            multi30k_bin / "bin",
            "--user-dir",
            USER_DIR,
            "--path",
            tmp_path / "checkpoint_last.pt",
            "-s",
            "de",
            "-t",
            "en",
            "--beam",
            "2",
            "--batch-size",
            "32",
            "--required-batch-size-multiple",
            "1",
            "--max-len-a",
            "1",
            "--max-len-b",
            "5",  # a model of 40 updates decodes long otherwise
            "--remove-bpe",
            "sentencepiece",
            "--cpu",
        ]
    )
    hypotheses = [line for line in gen.stdout.splitlines() if line.startswith("H-")]
    assert len(hypotheses) == 100  # every test sentence, none dropped
    assert "BLEU4" in gen.stdout


@pytest.mark.slow
@pytest.mark.parametrize("candidates", ["neighbours", "predicted"])
def test_language_model_trains_and_evaluates(wikitext_bin, tmp_path, candidates):
    proc = train(
        wikitext_bin / "bin",
        tmp_path,
        *LM_MODEL,
        *SKD,
        "--skd-candidates",
        candidates,
        "--skd-alpha",
        "0.3",
        "--skd-topk",
        "8",
        "--max-update",
        "30",
    )
    records = train_logs(proc.stdout)
    assert_loss_goes_down(records)
    assert all(r["skd_alpha"] == 0.3 for r in records)
    if candidates != "neighbours":
        return  # the checkpoint is the same kind of file whatever the candidates: evaluate once
    assert 1 < eval_lm_perplexity(wikitext_bin / "bin", tmp_path / "checkpoint_last.pt") < 5000


@pytest.mark.slow
def test_random_candidates_at_a_gold_mass_train(multi30k_bin, tmp_path):
    proc = train(
        multi30k_bin / "bin",
        tmp_path,
        *TRANSLATION_MODEL,
        *SKD,
        "--skd-candidates",
        "random",
        "--skd-gold-mass",
        "0.8",
        "--skd-topk",
        "4",
        "--skd-alpha",
        "0.5",
        "--max-update",
        "30",
    )
    records = train_logs(proc.stdout)
    assert_loss_goes_down(records)
    assert all(r["skd_gold_q"] == pytest.approx(0.8, abs=1e-3) and r["skd_tau"] > 0 for r in records)


@pytest.mark.slow
def test_resumed_run_continues_the_alpha_schedule(multi30k_bin, tmp_path):
    schedule = ["--skd-alpha", "0.8", "--skd-start-update", "4", "--skd-warmup-updates", "16"]
    common = [*TRANSLATION_MODEL, *SKD, *schedule, "--update-freq", "2"]
    first = train_logs(train(multi30k_bin / "bin", tmp_path, *common, "--max-update", "10").stdout)
    second = train_logs(train(multi30k_bin / "bin", tmp_path, *common, "--max-update", "18").stdout)
    assert [r["num_updates"] for r in first] == list(range(1, 11))
    assert [r["num_updates"] for r in second] == list(range(11, 19))
    for r in first + second:
        # The record after update u+1 was trained with alpha(u): u updates already applied.
        u = int(r["num_updates"]) - 1
        assert r["skd_alpha"] == pytest.approx(skd_alpha(u, 0.8, 4, 16), abs=1e-4), r


@pytest.mark.slow
def test_alpha_zero_logs_the_same_training_loss_as_label_smoothed_cross_entropy(multi30k_bin, tmp_path):
    args = [*TRANSLATION_MODEL, "--label-smoothing", "0.1", "--max-update", "12"]
    skd = train_logs(
        train(
            multi30k_bin / "bin", tmp_path / "skd", *args, "--criterion", "label_smoothed_skd", "--skd-alpha", "0"
        ).stdout
    )
    base = train_logs(
        train(multi30k_bin / "bin", tmp_path / "base", *args, "--criterion", "label_smoothed_cross_entropy").stdout
    )
    assert len(skd) == len(base) == 12
    assert [(r["loss"], r["nll_loss"]) for r in skd] == [(r["loss"], r["nll_loss"]) for r in base]


# One bad value of each criterion family through the real command (the exit status, the message,
# no checkpoint); every flag's check is tested in-process where the criterion is built
# (test_criterion.py, test_word_kd.py), without seconds of fairseq start-up per case.
@pytest.mark.slow
@pytest.mark.parametrize(
    "criterion, flags, message",
    [
        ("skd", ["--skd-topk", "5000"], "--skd-topk: k=5000 is out of range"),
        ("word_kd", ["--kd-teacher-path", "/nonexistent.pt"], "teacher checkpoint '/nonexistent.pt' not found"),
    ],
)
def test_bad_flags_exit_nonzero_with_the_message(multi30k_bin, tmp_path, criterion, flags, message):
    proc = train(
        multi30k_bin / "bin",
        tmp_path,
        *TRANSLATION_MODEL,
        "--criterion",
        f"label_smoothed_{criterion}",
        "--label-smoothing",
        "0.1",
        *flags,
        "--max-update",
        "1",
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "checkpoint_last.pt").exists()


def adaptive_lm(data):
    """transformer_lm_wiki103's flags at a tiny size: adaptive input and softmax, tied weights and
    projections, cutoffs at about 1/4 and 1/2 of the vocabulary (examples/language_model)."""
    vocab = sum(1 for _ in open(data / "dict.txt")) + 4
    cutoff = f"{vocab // 4},{vocab // 2}"
    return [
        "--task",
        "language_modeling",
        "--arch",
        "transformer_lm",
        "--decoder-layers",
        "1",
        "--decoder-embed-dim",
        "64",
        "--decoder-input-dim",
        "64",
        "--decoder-output-dim",
        "64",
        "--decoder-ffn-embed-dim",
        "128",
        "--decoder-attention-heads",
        "2",
        "--tokens-per-sample",
        "64",
        "--sample-break-mode",
        "none",
        "--adaptive-input",
        "--adaptive-input-factor",
        "4",
        "--adaptive-input-cutoff",
        cutoff,
        "--adaptive-softmax-cutoff",
        cutoff,
        "--adaptive-softmax-factor",
        "4",
        "--adaptive-softmax-dropout",
        "0.2",
        "--tie-adaptive-weights",
        "--tie-adaptive-proj",
        "--ddp-backend",
        "legacy_ddp",
    ]


@pytest.mark.slow
def test_adaptive_softmax_with_label_smoothing_fails_before_any_update(wikitext_bin, tmp_path):
    data = wikitext_bin / "bin"
    proc = train(data, tmp_path, *adaptive_lm(data), *SKD, "--max-update", "5", check=False)
    assert proc.returncode != 0
    assert "--label-smoothing 0.1 on an adaptive softmax" in proc.stdout + proc.stderr
    assert train_logs(proc.stdout) == []


@pytest.mark.slow
def test_skd_trains_an_adaptive_softmax_language_model_and_it_evaluates(wikitext_bin, tmp_path):
    data = wikitext_bin / "bin"
    skd = [
        "--criterion",
        "label_smoothed_skd",
        "--label-smoothing",
        "0",
        "--skd-gold-mass",
        "0.8",
        "--skd-alpha",
        "0.5",
    ]
    proc = train(data, tmp_path, *adaptive_lm(data), *skd, "--skd-neighbour-refresh", "10", "--max-update", "25")
    records = train_logs(proc.stdout)
    assert_loss_goes_down(records)
    assert all(r["skd_alpha"] == 0.5 and 0.5 < r["skd_gold_q"] <= 0.8 + 1e-3 for r in records)
    assert 1 < eval_lm_perplexity(data, tmp_path / "checkpoint_last.pt") < 5000
    # Predicted candidates (the running top-k over every cluster) train too.
    proc = train(
        data, tmp_path / "predicted", *adaptive_lm(data), *skd, "--skd-candidates", "predicted", "--max-update", "6"
    )
    records = train_logs(proc.stdout)
    assert len(records) == 6 and all(r["skd_gold_q"] > 0.5 for r in records)


@pytest.mark.slow
def test_word_kd_trains_an_adaptive_softmax_student(wikitext_bin, tmp_path, lm_teacher):
    data = wikitext_bin / "bin"
    teacher = ["--kd-teacher-path", lm_teacher]
    proc = train(
        data,
        tmp_path / "student",
        *adaptive_lm(data),
        *WORD_KD,
        "--label-smoothing",
        "0",
        *teacher,
        "--kd-teacher-topk",
        "16",
        "--max-update",
        "20",
    )
    records = train_logs(proc.stdout)
    assert_loss_goes_down(records)
    assert all(r["kd_kl"] > 0 for r in records)
    # The whole vocabulary would need the [N, V] matrix the adaptive softmax avoids: refused.
    proc = train(
        data,
        tmp_path / "full",
        *adaptive_lm(data),
        *WORD_KD,
        "--label-smoothing",
        "0",
        *teacher,
        "--max-update",
        "3",
        check=False,
    )
    assert proc.returncode != 0 and "needs --kd-teacher-topk K > 0" in proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "criterion",
    [
        ["--criterion", "label_smoothed_word_kd", "--kd-temperature", "2"],
        ["--criterion", "label_smoothed_tie_kd", "--tie-topk", "8", "--tie-iterations", "2"],
    ],
)
def test_kd_criteria_train_from_a_teacher_and_compose_with_skd(multi30k_bin, tmp_path, translation_teacher, criterion):
    data, teacher = multi30k_bin / "bin", translation_teacher
    proc = train(
        data,
        tmp_path / "student",
        *TRANSLATION_MODEL,
        *criterion,
        "--label-smoothing",
        "0.1",
        "--kd-teacher-path",
        teacher,
        "--kd-weight",
        "0.5",
        "--kd-teacher-topk",
        "16",
        "--skd-alpha",
        "0.3",
        "--max-update",
        "25",
    )
    records = train_logs(proc.stdout)
    assert_loss_goes_down(records)
    assert all(r["kd_kl"] > 0 and r["skd_alpha"] == 0.3 and "skd_loss" in r for r in records)
    assert all(("tie_rank" in r) == ("label_smoothed_tie_kd" in criterion) for r in records)
    # The student checkpoint holds the student only: the teacher is not part of the criterion.
    state = torch.load(tmp_path / "student" / "checkpoint_last.pt", weights_only=True)
    assert state.get("criterion") is None
    assert state["model"].keys() == torch.load(teacher, weights_only=True)["model"].keys()


@pytest.mark.slow
def test_word_kd_trains_resumes_and_validates_from_a_teacher_cache(multi30k_bin, tmp_path, translation_teacher_cache):
    """The cache's teacher checkpoint no longer exists (see the fixture): the run loads none."""
    data, student = multi30k_bin / "bin", tmp_path / "student"
    args = [*TRANSLATION_MODEL, *WORD_KD, "--kd-teacher-cache", translation_teacher_cache]
    args += ["--kd-temperature", "2", "--validate-interval-updates", "4", "--no-epoch-checkpoints"]
    first = train(data, student, *args, "--max-update", "4", "--save-interval-updates", "4")
    resumed = train(data, student, *args, "--max-update", "8")
    records = train_logs(first.stdout) + train_logs(resumed.stdout)
    assert [int(r["num_updates"]) for r in records] == list(range(1, 9))
    assert all(r["kd_kl"] > 0 for r in records)
    valid = [r for r in fairseq_log.records((first.stdout + resumed.stdout).splitlines()) if r.kind == "valid"]
    assert [int(r.values["num_updates"]) for r in valid] == [4, 8]
    # Another split's name for training: refused before any step, naming the fix.
    proc = train(data, tmp_path / "other", *args, "--train-subset", "valid", "--max-update", "1", check=False)
    assert proc.returncode != 0 and "build the cache with --subset valid" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def lm_teacher(wikitext_bin, tmp_path_factory):
    """A full-softmax language model trained for 10 updates, the teacher of the LM KD tests."""
    save_dir = tmp_path_factory.mktemp("lm-teacher")
    train(
        wikitext_bin / "bin",
        save_dir,
        *LM_MODEL,
        "--criterion",
        "label_smoothed_cross_entropy",
        "--label-smoothing",
        "0",
        "--max-update",
        "10",
    )
    return save_dir / "checkpoint_last.pt"


@pytest.mark.slow
def test_word_kd_trains_a_language_model_from_a_teacher(wikitext_bin, tmp_path, lm_teacher):
    data = wikitext_bin / "bin"
    proc = train(
        data,
        tmp_path / "student",
        *LM_MODEL,
        *WORD_KD,
        "--label-smoothing",
        "0",
        "--kd-teacher-path",
        lm_teacher,
        "--max-update",
        "25",
    )
    records = train_logs(proc.stdout)
    assert_loss_goes_down(records)
    assert all(r["kd_kl"] > 0 for r in records)


@pytest.mark.slow
def test_tie_kd_iterations_are_refused_for_a_language_model(wikitext_bin, tmp_path):
    proc = train(
        wikitext_bin / "bin",
        tmp_path,
        *LM_MODEL,
        "--criterion",
        "label_smoothed_tie_kd",
        "--kd-teacher-path",
        tmp_path / "none.pt",
        "--tie-iterations",
        "2",
        "--max-update",
        "1",
        check=False,
    )
    assert proc.returncode != 0
    assert "use --tie-iterations 1 for language modelling" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_ps_kd_resumed_inside_an_epoch_learns_from_the_previous_epochs_checkpoint(multi30k_bin, tmp_path):
    # Epoch checkpoints kept (fairseq's default), a checkpoint every 4 updates.
    options = [o for o in OPTIMISATION if o != "--no-epoch-checkpoints"]
    args = [
        multi30k_bin / "bin",
        "--user-dir",
        USER_DIR,
        "--save-dir",
        tmp_path,
        *options,
        *TRANSLATION_MODEL,
        "--criterion",
        "label_smoothed_ps_kd",
        "--label-smoothing",
        "0.1",
        "--ps-kd-alpha",
        "0.6",
        "--max-epoch",
        "3",
        "--max-tokens",
        "8192",
        "--save-interval-updates",
        "4",
    ]
    first = run(["fairseq-train", *args, "--max-update", "10"])
    records = train_logs(first.stdout)
    per_epoch = max(int(r["num_updates"]) for r in records if r["epoch"] == 1)
    assert 5 <= per_epoch < 10, "the slice's epoch length changed: pick another --max-update"
    state = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert state["extra_state"]["train_iterator"]["iterations_in_epoch"] > 0  # stopped inside epoch 2
    second = run(["fairseq-train", *args])
    log = first.stdout + first.stderr + second.stdout + second.stderr
    assert "PS-KD: epoch 2 learns from the weights at the end of the previous epoch" in first.stdout + first.stderr
    assert f"PS-KD: epoch 2 learns from the weights of {tmp_path}/checkpoint1.pt" in second.stdout + second.stderr
    assert "PS-KD: epoch 3 learns from the weights at the end of the previous epoch" in log
    for r in records + train_logs(second.stdout):
        assert r["kd_weight"] == pytest.approx({1: 0.0, 2: 0.4, 3: 0.6}[int(r["epoch"])]), r
        assert (r.get("kd_kl", 0) > 0) == (r["epoch"] > 1)
