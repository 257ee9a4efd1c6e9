"""``label_smoothed_tie_kd`` in process: the ranking term, the iterative passes, the errors."""

import socket

import pytest
import torch
import torch.distributed as dist
from conftest import build_translation, save_teacher, translation_sample
from torch.nn.parallel import DistributedDataParallel

from skd_fairseq.distillation import kl_to_teacher, teacher_distribution, tie_ranking_loss

LS = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
TIE = ["--criterion", "label_smoothed_tie_kd", "--label-smoothing", "0.1"]

# Every test writes a teacher checkpoint with fairseq's Trainer: seconds each, not in the fast tier.
pytestmark = pytest.mark.slow


def build_tie(tmp_path, *flags, seed=1):
    teacher_path, teacher = save_teacher(tmp_path / "teacher", seed=seed)
    (tmp_path / "student").mkdir(exist_ok=True)
    task, model, criterion, _ = build_translation(
        tmp_path / "student", TIE + ["--kd-teacher-path", teacher_path, *flags]
    )
    return task, model, criterion, teacher


def log_probs_of(model, net_input):
    with torch.no_grad():
        lprobs = model.get_normalized_probs(model(**net_input), log_probs=True)
    return lprobs.view(-1, lprobs.size(-1))


def test_one_pass_is_word_kd_plus_the_ranking_loss(tmp_path, fresh_metrics):
    task, model, tie, teacher = build_tie(tmp_path, "--kd-weight", "0.6", "--tie-topk", "4")
    _, _, ls, _ = build_translation(tmp_path / "student", LS)
    sample = translation_sample(task, seed=2)
    model.train()
    loss, _, log = tie(model, sample)
    ls_loss = ls(model, sample)[0].detach()
    teacher.eval()
    pad = sample["target"].view(-1).eq(task.target_dictionary.pad())
    q, ids = teacher_distribution([log_probs_of(teacher, sample["net_input"])], 1.0)
    student = log_probs_of(model, sample["net_input"])
    kl = kl_to_teacher(student, q, ids, pad_mask=pad)
    rank = tie_ranking_loss(student.exp(), q, ids, 4, pad_mask=pad)
    assert float(rank) > 0
    assert float(loss.detach()) == pytest.approx(0.4 * float(ls_loss) + 0.6 * float(kl + rank), rel=1e-5)
    assert float(log["tie_rank"]) == pytest.approx(float(rank), rel=1e-5)
    assert float(log["kd_kl"]) == pytest.approx(float(kl), rel=1e-5) and log["kd_weight"] == 0.6


def test_iterations_feed_the_student_its_greedy_predictions(tmp_path, fresh_metrics):
    task, model, tie, teacher = build_tie(tmp_path, "--kd-weight", "1", "--tie-iterations", "3", "--tie-topk", "3")
    sample = translation_sample(task, seed=3)
    pad = task.target_dictionary.pad()
    seen = {"student": [], "teacher": []}
    student_decoder, teacher_decoder = model.decoder.forward, teacher.decoder.forward
    model.decoder.forward = lambda prev, **kw: seen["student"].append(prev.clone()) or student_decoder(prev, **kw)
    teacher.decoder.forward = lambda prev, **kw: seen["teacher"].append(prev.clone()) or teacher_decoder(prev, **kw)
    encoder_calls, teacher_encoder_calls = [], []
    model.encoder.register_forward_hook(lambda *args: encoder_calls.append(1))
    teacher.encoder.register_forward_hook(lambda *args: teacher_encoder_calls.append(1))
    tie.teacher.models[0] = teacher
    model.train()
    original = sample["net_input"]["prev_output_tokens"].clone()
    loss, _, log = tie(model, sample)
    loss.backward()
    assert len(encoder_calls) == 1  # the encoder runs once; its output serves every pass
    assert len(teacher_encoder_calls) == 1  # so does the teacher's
    assert len(seen["student"]) == 3
    assert all(torch.equal(s, t) for s, t in zip(seen["student"], seen["teacher"]))
    assert torch.equal(seen["student"][0], original)
    assert torch.equal(sample["net_input"]["prev_output_tokens"], original)  # the sample is not changed
    for after in seen["student"][1:]:
        assert after.shape == original.shape
        assert torch.equal(after[:, 0], original[:, 0])  # the first input token stays
        assert torch.equal(after.eq(pad), original.eq(pad))  # padding stays where it was
    # Pass 2's input is pass 1's argmax, shifted right.
    model.eval()
    with torch.no_grad():
        first = model.decoder.forward(
            original,
            encoder_out=model.encoder(
                sample["net_input"]["src_tokens"], src_lengths=sample["net_input"]["src_lengths"]
            ),
        )[0]
    want = torch.cat([original[:, :1], first.argmax(-1)[:, :-1]], 1).masked_fill(original.eq(pad), pad)
    assert torch.equal(seen["student"][1], want)
    assert torch.isfinite(loss) and "tie_rank" in log


def test_reusing_the_teachers_encoder_output_changes_no_loss(tmp_path, fresh_metrics):
    task, model, tie, _ = build_tie(tmp_path, "--tie-iterations", "3", "--tie-topk", "3")
    sample = translation_sample(task, seed=5)
    model.train()
    torch.manual_seed(7)
    cached_loss, _, cached_log = tie(model, sample)
    tie.teacher.encode = lambda *args, **kwargs: None  # every pass runs the whole teacher again
    torch.manual_seed(7)  # the same dropout masks in the student
    loss, _, log = tie(model, sample)
    assert torch.equal(cached_loss, loss)
    assert all(torch.equal(cached_log[key], log[key]) for key in ("kd_kl", "tie_rank"))


def test_validation_runs_one_plain_pass(tmp_path, fresh_metrics):
    task, model, tie, _ = build_tie(tmp_path, "--tie-iterations", "2")
    _, _, ls, _ = build_translation(tmp_path / "student", LS)
    sample = translation_sample(task, seed=4)
    model.eval()
    with torch.no_grad():
        loss, _, log = tie(model, sample)
        want, _, _ = ls(model, sample)
    assert torch.equal(loss, want) and "tie_rank" not in log


def test_iterations_under_torch_ddp_ask_for_legacy_ddp(tmp_path, fresh_metrics):
    task, model, tie, _ = build_tie(tmp_path, "--tie-iterations", "2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(model)
        wrapped.train()
        with pytest.raises(ValueError, match="--ddp-backend legacy_ddp"):
            tie(wrapped, translation_sample(task))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tie-iterations", "0"], "--tie-iterations must be >= 1"),
        (["--tie-topk", "0"], r"--tie-topk must be in \[1, 64\]"),
        (["--kd-teacher-topk", "5", "--tie-topk", "6"], r"--tie-topk must be in \[1, 5\]"),
    ],
)
def test_bad_tie_flags_fail_when_the_criterion_is_built(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        build_tie(tmp_path, *flags)
