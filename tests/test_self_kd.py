"""``label_smoothed_self_kd``: the dropout twin and the moving-average teacher, in process and with fairseq-train."""

import json

import pytest
import torch
from conftest import BIN, USER_DIR, build_language_model, build_translation, lm_sample, run, translation_sample

from skd_fairseq.criterions.label_smoothed_self_kd import TASK_STATE_KEY
from skd_fairseq.schedule import skd_alpha

LS = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
SELF_KD = ["--criterion", "label_smoothed_self_kd", "--label-smoothing", "0.1"]


def loss_and_grads(criterion, model, sample, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    model.zero_grad()
    loss, _, log = criterion(model, sample)
    loss.backward()
    return loss.detach(), log, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("teacher", ["twin", "ema"])
def test_alpha_zero_is_exactly_label_smoothing(tmp_path, fresh_metrics, teacher):
    task, model, self_kd, _ = build_translation(
        tmp_path, SELF_KD + ["--self-kd-teacher", teacher, "--self-kd-alpha", "0", "--dropout", "0.3"]
    )
    _, _, ls, _ = build_translation(tmp_path, LS)
    sample = translation_sample(task, seed=2)
    model.train()
    got = loss_and_grads(self_kd, model, sample, seed=7)
    want = loss_and_grads(ls, model, sample, seed=7)
    assert torch.equal(got[0], want[0]) and all(torch.equal(a, b) for a, b in zip(got[2], want[2]))
    assert "kd_kl" not in got[1]


def float64_twin_reference(model, sample, alpha, temperature, epsilon, pad, seed):
    """L_ls + alpha T^2 KL(q_twin || p_s^(T)) in float64 from the logits of the two passes, the
    student's pass first and the twin's second from the same random state (the same masks)."""
    torch.manual_seed(seed)
    student = model(**sample["net_input"])[0].double()
    with torch.no_grad():
        twin = model(**sample["net_input"])[0].double()
    target = sample["target"].view(-1)
    real = target.ne(pad)
    lprobs = torch.log_softmax(student, -1).view(-1, student.size(-1))
    nll = -lprobs.gather(1, target.unsqueeze(1)).squeeze(1)
    smooth = -lprobs.sum(-1)
    eps_i = epsilon / (lprobs.size(-1) - 1)
    ls = ((1 - epsilon - eps_i) * nll + eps_i * smooth)[real].sum()
    q = torch.softmax(twin / temperature, -1).view(-1, twin.size(-1))
    log_p = torch.log_softmax(student / temperature, -1).view(-1, student.size(-1))
    kl = (q * (q.log() - log_p)).sum(-1)[real].sum()
    return ls + alpha * temperature**2 * kl


def test_the_twin_loss_and_gradient_equal_a_float64_reference_with_the_same_masks(tmp_path, fresh_metrics):
    flags = ["--self-kd-teacher", "twin", "--self-kd-alpha", "0.7", "--self-kd-temperature", "1.5", "--dropout", "0.3"]
    task, model, criterion, _ = build_translation(tmp_path, SELF_KD + flags)
    sample = translation_sample(task, seed=3)
    model.double().train()
    loss, log, grads = loss_and_grads(criterion, model, sample, seed=11)
    model.zero_grad()
    want = float64_twin_reference(model, sample, 0.7, 1.5, 0.1, task.target_dictionary.pad(), seed=11)
    want.backward()
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-6)  # fairseq's log-probabilities are fp32
    scale = max(float(p.grad.abs().max()) for p in model.parameters())
    assert all(float((g - p.grad).abs().max()) <= 1e-5 * scale for g, p in zip(grads, model.parameters()))
    assert float(log["kd_kl"]) > 0  # two masks: the twin differs


@pytest.mark.parametrize("teacher", ["twin", "ema"])
def test_the_log_gives_alpha_t_as_kd_weight_through_its_schedule(tmp_path, fresh_metrics, teacher):
    """skd_alpha in the log is SKD's (0 here); the self-KD term's weight alpha_t is kd_weight."""
    flags = [
        "--self-kd-teacher",
        teacher,
        "--self-kd-alpha",
        "2",
        "--self-kd-start-update",
        "10",
        "--self-kd-warmup-updates",
        "10",
    ]
    task, model, criterion, _ = build_translation(tmp_path, SELF_KD + flags)
    sample = translation_sample(task, seed=4)
    model.train()
    logs = []
    # Update 0 first: an ema criterion at a later update without an average would be a resume.
    for updates, alpha_t in ((0, 0.0), (15, skd_alpha(15, 2.0, 10, 10)), (30, 2.0)):
        criterion.set_num_updates(updates)
        _, _, log = criterion(model, sample)
        assert log["kd_weight"] == pytest.approx(alpha_t) and log["skd_alpha"] == 0
        assert ("kd_kl" in log) == (alpha_t > 0)
        logs.append(log)
    with fresh_metrics.aggregate() as agg:
        criterion.reduce_metrics(logs)
    assert 0 < skd_alpha(15, 2.0, 10, 10) < 2
    mean = (0.0 + skd_alpha(15, 2.0, 10, 10) + 2.0) / 3  # the mean over the batches
    assert agg.get_smoothed_values()["kd_weight"] == pytest.approx(mean, abs=1e-4)


@pytest.mark.parametrize("teacher", ["twin", "ema"])
def test_the_teacher_pass_builds_no_autograd_graph(tmp_path, fresh_metrics, teacher, monkeypatch):
    from skd_fairseq.criterions.teacher_term import TeacherTerm

    seen = []
    original = TeacherTerm.targets
    monkeypatch.setattr(
        TeacherTerm, "targets", lambda self, *a, **kw: seen.append(original(self, *a, **kw)) or seen[-1]
    )
    task, model, criterion, _ = build_translation(
        tmp_path, SELF_KD + ["--self-kd-teacher", teacher, "--dropout", "0.3"]
    )
    model.train()
    criterion(model, translation_sample(task))
    (q, _), *_ = seen
    assert not q.requires_grad and q.grad_fn is None
    if teacher == "ema":
        assert not any(p.requires_grad for p in criterion.teacher.models[0].parameters())


def test_the_moving_average_follows_its_formula_once_per_update(tmp_path, fresh_metrics):
    flags = ["--self-kd-teacher", "ema", "--self-kd-ema-decay", "0.9", "--self-kd-ema-start-update", "1"]
    task, model, criterion, _ = build_translation(tmp_path, SELF_KD + flags)
    sample = translation_sample(task)
    model.train()
    # A layer's weight and the embedding that --share-all-embeddings ties to three names (encoder and
    # decoder input, decoder output): each decays once a step.
    names = ["encoder.layers.0.fc1.weight", "encoder.embed_tokens.weight"]
    assert model.decoder.output_projection.weight is model.encoder.embed_tokens.weight
    params = dict(model.named_parameters())
    want = {}
    for update in range(5):
        with torch.no_grad():
            for name in names:
                params[name].add_(0.01 * (update + 1))  # an "optimizer step"
        criterion.set_num_updates(update)
        for _ in range(2):  # two micro-batches of one update (--update-freq 2): one step of the formula
            criterion(model, sample)
        average = dict(criterion.teacher.models[0].named_parameters())
        for name in names:
            theta = params[name].detach().clone()
            want[name] = theta if update <= 1 else 0.9 * want[name] + 0.1 * theta  # the student up to the start
            torch.testing.assert_close(average[name], want[name], rtol=1e-6, atol=1e-7)
    assert all(average[n].dtype == torch.float32 and not torch.equal(average[n], params[n]) for n in names)


def test_the_moving_average_stays_fp32_beside_a_half_precision_student(tmp_path, fresh_metrics):
    task, model, criterion, _ = build_translation(tmp_path, SELF_KD + ["--self-kd-teacher", "ema"])
    model.train()
    criterion(model, translation_sample(task))  # builds the average
    model.to(torch.bfloat16)
    criterion.set_num_updates(1)
    loss, _, _ = criterion(model, translation_sample(task))
    assert torch.isfinite(loss) and next(criterion.teacher.models[0].parameters()).dtype == torch.float32


def test_an_adaptive_softmax_student_needs_the_teachers_top_k(tmp_path, fresh_metrics):
    lm = ["--criterion", "label_smoothed_self_kd", "--label-smoothing", "0", "--self-kd-teacher", "ema"]
    task, model, criterion, _ = build_language_model(tmp_path, lm + ["--kd-teacher-topk", "8"])
    model.train()
    loss, _, log = criterion(model, lm_sample(task))
    assert torch.isfinite(loss) and float(log["kd_kl"]) >= 0
    task, model, criterion, _ = build_language_model(tmp_path, lm)
    model.train()
    with pytest.raises(ValueError, match=r"needs --kd-teacher-topk K > 0"):
        criterion(model, lm_sample(task))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--self-kd-alpha", "-1"], r"--self-kd-alpha must be >= 0, got -1"),
        (["--self-kd-start-update", "-2"], r"--self-kd-start-update must be >= 0"),
        (["--self-kd-warmup-updates", "-2"], r"--self-kd-warmup-updates must be >= 0"),
        (["--self-kd-temperature", "0"], r"--self-kd-temperature must be > 0"),
        (["--self-kd-ema-decay", "1"], r"--self-kd-ema-decay must be in \(0, 1\), got 1.0"),
        (["--self-kd-ema-decay", "0"], r"--self-kd-ema-decay must be in \(0, 1\)"),
        (["--self-kd-ema-start-update", "-1"], r"--self-kd-ema-start-update must be >= 0"),
        (["--kd-teacher-topk", "-1"], r"--kd-teacher-topk must be >= 0"),
    ],
)
def test_bad_flags_are_refused_with_the_flags_name(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        build_translation(tmp_path, SELF_KD + flags)


TRAIN = [
    *("--task", "translation", "-s", "de", "-t", "en", "--arch", "transformer", "--share-all-embeddings"),
    *("--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32"),
    *("--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64"),
    *("--encoder-attention-heads", "2", "--decoder-attention-heads", "2"),
    *("--optimizer", "adam", "--lr", "2e-3", "--dropout", "0", "--max-tokens", "1024", "--cpu", "--seed", "1"),
    *("--num-workers", "0", "--required-batch-size-multiple", "1", "--no-epoch-checkpoints", "--disable-validation"),
]
EMA = [*SELF_KD, "--self-kd-teacher", "ema", "--self-kd-ema-decay", "0.8", "--self-kd-ema-start-update", "1"]


def average_in(checkpoint):
    return torch.load(checkpoint, weights_only=True)["task_state"][TASK_STATE_KEY]


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_moving_average(multi30k_bin, tmp_path):
    fairseq_train = [BIN / "fairseq-train", multi30k_bin / "bin", "--user-dir", USER_DIR, *TRAIN]
    train = [*fairseq_train, *EMA]
    run([*train, "--save-dir", tmp_path / "straight", "--max-update", "6"])
    run([*train, "--save-dir", tmp_path / "resumed", "--max-update", "3"])
    log = run([*train, "--save-dir", tmp_path / "resumed", "--max-update", "6"]).stdout
    # The average takes in the weights of update u at the step after it: saved after update 3, it
    # holds update 2's, and the resumed run's first step adds update 3's, as the straight run did.
    assert "the moving average of update 2 restored" in log
    straight, resumed = (average_in(tmp_path / d / "checkpoint_last.pt") for d in ("straight", "resumed"))
    assert straight["updates"] == resumed["updates"] == 5
    for name, value in straight["weights"].items():
        torch.testing.assert_close(resumed["weights"][name], value, rtol=1e-5, atol=1e-6)
    model = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=True)["model"]
    assert any(not torch.equal(model[k].float(), v) for k, v in straight["weights"].items())  # an average, not a copy
    # A checkpoint without the average (a twin run's) is refused when resuming from it.
    run([*fairseq_train, *SELF_KD, "--self-kd-teacher", "twin", "--save-dir", tmp_path / "other", "--max-update", "2"])
    proc = run([*train, "--save-dir", tmp_path / "other", "--max-update", "4"], check=False)
    assert proc.returncode != 0 and "holds no moving average" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_moving_average_exports_as_a_model_that_fairseq_scores(multi30k_bin, tmp_path):
    fairseq_train = [BIN / "fairseq-train", multi30k_bin / "bin", "--user-dir", USER_DIR, *TRAIN]
    run([*fairseq_train, *EMA, "--save-dir", tmp_path / "ema", "--max-update", "3"])
    checkpoint, exported = tmp_path / "ema" / "checkpoint_last.pt", tmp_path / "average.pt"
    out = run([BIN / "skd-fairseq-export-average", checkpoint, "--output", exported]).stdout
    assert "decay 0.8" in out and "up to update 2" in out
    average, state = average_in(checkpoint), torch.load(exported, weights_only=True)
    assert state["model"].keys() == average["weights"].keys()
    assert all(torch.equal(state["model"][k], v) for k, v in average["weights"].items())
    assert TASK_STATE_KEY not in state["task_state"] and "last_optimizer_state" not in state  # a model to score
    student = run([BIN / "skd-fairseq-validation-perplexity", multi30k_bin / "bin", "--path", checkpoint, "--cpu"])
    teacher = run([BIN / "skd-fairseq-validation-perplexity", multi30k_bin / "bin", "--path", exported, "--cpu"])
    assert json.loads(student.stdout.splitlines()[-1])["ppl"] != json.loads(teacher.stdout.splitlines()[-1])["ppl"]
    # Refused: a checkpoint without an average (a twin run's), a missing file, a file that is not
    # a checkpoint, the input itself (also through a link) as output.
    run([*fairseq_train, *SELF_KD, "--self-kd-teacher", "twin", "--save-dir", tmp_path / "twin", "--max-update", "1"])
    (tmp_path / "link.pt").symlink_to(checkpoint)
    for given, output, message in (
        (tmp_path / "twin" / "checkpoint_last.pt", tmp_path / "x.pt", "holds no moving average"),
        (tmp_path / "none.pt", tmp_path / "x.pt", "no such checkpoint file"),
        (multi30k_bin / "bin" / "dict.en.txt", tmp_path / "x.pt", "not a checkpoint torch can load"),
        (checkpoint, tmp_path / "link.pt", "--output is the input checkpoint"),
        (checkpoint, tmp_path / "no" / "x.pt", "its directory does not exist"),
    ):
        proc = run([BIN / "skd-fairseq-export-average", given, "--output", output], check=False)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "x.pt").exists()
