"""``label_smoothed_ps_kd`` in process: the target, the schedule, the teacher at epoch boundaries and on resume."""

import copy

import pytest
import torch
from conftest import build_translation, translation_sample

from skd_fairseq.schedule import progressive_alpha

LS = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]


def ps_kd(tmp_path, *flags):
    save_dir = tmp_path / "run"
    return build_translation(
        tmp_path,
        [
            "--criterion",
            "label_smoothed_ps_kd",
            "--label-smoothing",
            "0.1",
            "--max-epoch",
            "4",
            "--save-dir",
            str(save_dir),
            *flags,
        ],
    )


def perturb(model, scale=0.2):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def test_progressive_alpha_rises_linearly_from_the_second_epoch():
    assert progressive_alpha(1, 0.8, 4) == 0.0
    assert [progressive_alpha(t, 0.8, 4) for t in (2, 3, 4)] == pytest.approx([0.4, 0.6, 0.8])
    assert progressive_alpha(6, 0.8, 4) == pytest.approx(0.8)  # trained past T: a_T


def test_loss_is_the_cross_entropy_to_the_progressive_target(tmp_path, fresh_metrics):
    task, model, criterion, _ = ps_kd(tmp_path, "--ps-kd-alpha", "0.6")
    sample = translation_sample(task, seed=2)
    task.begin_epoch(1, model)
    perturb(model)
    task.begin_epoch(2, model)  # the teacher: these weights
    teacher = copy.deepcopy(model).eval()
    perturb(model)  # the student trains on during epoch 2
    model.train()
    model.zero_grad()
    loss, _, log = criterion(model, sample)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    # Brute force in float64: -sum_w [(1 - a) y_ls + a p_teacher](w) log p(w), a = 0.6 * 2 / 4.
    a = 0.3
    model.zero_grad()
    lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True).view(
        -1, len(task.target_dictionary)
    )
    with torch.no_grad():
        p_teacher = teacher.get_normalized_probs(teacher(**sample["net_input"]), log_probs=True).exp()
    p_teacher = p_teacher.view_as(lprobs).double()
    target = sample["target"].view(-1)
    V, eps = lprobs.size(1), 0.1
    y_ls = torch.full((target.numel(), V), eps / (V - 1), dtype=torch.float64)
    y_ls[torch.arange(target.numel()), target] += 1 - eps - eps / (V - 1)
    real = target.ne(task.target_dictionary.pad()).double().unsqueeze(1)
    soft = (1 - a) * y_ls + a * p_teacher
    reference = -(real * soft * lprobs.double()).sum()
    entropy = -(real * p_teacher * p_teacher.clamp_min(1e-300).log()).sum()
    # The criterion's loss is (1 - a) L_ls + a KL: the cross-entropy less the constant a H(p_teacher).
    assert float(loss.detach()) == pytest.approx(float((reference - a * entropy).detach()), rel=1e-5)
    assert float(log["kd_weight"]) == pytest.approx(a) and int(log["kd_ntokens"]) == sample["ntokens"]
    reference.backward()
    for n, p in model.named_parameters():
        # fp32 against float64 sums: an element's error follows the tensor's scale.
        scale = max(1.0, float(grads[n].abs().max()))
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-5 * scale)


def test_the_first_epoch_has_no_teacher_and_the_teacher_follows_each_epoch_boundary(tmp_path, fresh_metrics):
    task, model, criterion, _ = ps_kd(tmp_path)
    _, _, ls, _ = build_translation(tmp_path, LS)
    sample = translation_sample(task)
    model.train()
    task.begin_epoch(1, model)
    assert criterion.teacher is None
    torch.manual_seed(0)
    loss, _, log = criterion(model, sample)
    torch.manual_seed(0)
    assert torch.equal(loss, ls(model, sample)[0])  # epoch 1: plain label smoothing
    assert log["kd_weight"] == 0 and log["kd_ntokens"] == 0 and "kd_kl" in log  # same keys as later steps
    snapshots = {}
    for epoch in (2, 3):
        perturb(model)
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        task.begin_epoch(epoch, model)
        teacher = criterion.teacher.models[0]
        perturb(model)  # training moves the student, not the teacher
        assert all(torch.equal(teacher.state_dict()[k], v) for k, v in snapshots[epoch].items())
        assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
        _, _, log = criterion(model, sample)
        assert log["kd_weight"] == pytest.approx(progressive_alpha(epoch, 0.8, 4)) and log["kd_kl"] > 0
    assert criterion.teacher.models[0] is teacher  # one copy, refreshed in place
    # Validation: the student's plain label-smoothed loss.
    model.eval()
    with torch.no_grad():
        assert torch.equal(criterion(model, sample)[0], ls(model, sample)[0])


def write_checkpoint(path, model, epoch, iterations):
    """What fairseq's trainer saves, as far as the teacher reads it."""
    torch.save(
        {
            "model": model.state_dict(),
            "extra_state": {"train_iterator": {"version": 2, "epoch": epoch, "iterations_in_epoch": iterations}},
        },
        path,
    )


def test_a_resumed_run_rebuilds_the_teacher_of_its_epoch(tmp_path, fresh_metrics):
    task, model, criterion, cfg = ps_kd(tmp_path)
    save_dir = tmp_path / "run"
    save_dir.mkdir()
    # Resumed from a checkpoint written at the end of epoch 2: the restored weights are the teacher.
    write_checkpoint(save_dir / "checkpoint_last.pt", model, epoch=3, iterations=0)
    task.begin_epoch(3, model)
    assert all(torch.equal(criterion.teacher.models[0].state_dict()[k], v) for k, v in model.state_dict().items())

    # Resumed inside epoch 3 (--save-interval-updates): the teacher comes from checkpoint2.pt.
    end_of_epoch_2 = copy.deepcopy(model)
    perturb(end_of_epoch_2)
    write_checkpoint(save_dir / "checkpoint2.pt", end_of_epoch_2, epoch=3, iterations=0)
    write_checkpoint(save_dir / "checkpoint_last.pt", model, epoch=3, iterations=5)
    task, model, criterion, _ = ps_kd(tmp_path)
    task.begin_epoch(3, model)
    teacher = criterion.teacher.models[0].state_dict()
    assert all(torch.equal(teacher[k], v) for k, v in end_of_epoch_2.state_dict().items())
    assert criterion.teacher_weight() == pytest.approx(0.6)

    # Without that epoch checkpoint the run stops before training, saying what is missing.
    (save_dir / "checkpoint2.pt").unlink()
    task, model, criterion, _ = ps_kd(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"inside epoch 3 .*5 batches into epoch 3.*checkpoint2.pt is missing"):
        task.begin_epoch(3, model)
    # A checkpoint of the wrong moment is refused too.
    write_checkpoint(save_dir / "checkpoint2.pt", end_of_epoch_2, epoch=2, iterations=40)
    with pytest.raises(ValueError, match=r"checkpoint2.pt was not written at the end of epoch 2"):
        task.begin_epoch(3, model)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ps-kd-alpha", "1.5"], r"--ps-kd-alpha must be in \[0, 1\], got 1.5"),
        (["--max-epoch", "0"], r"it needs --max-epoch T > 0 \(got 0"),
        (["--kd-teacher-topk", "-1"], r"--kd-teacher-topk must be >= 0"),
    ],
)
def test_bad_flags_are_refused_with_the_flags_name(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        ps_kd(tmp_path, *flags)


@pytest.mark.parametrize(
    "flags",
    [
        ["--kd-teacher-path", "teacher.pt"],
        ["--kd-weight", "0.5"],
        ["--kd-temperature", "2"],
        ["--kd-teacher-cache", "x"],
    ],
)
def test_word_kds_teacher_flags_are_not_ps_kds(tmp_path, flags, capsys):
    """PS-KD holds the teacher term, not word-KD's flags: its teacher, weight and temperature are
    its own, so fairseq's parser does not know those flags for it."""
    with pytest.raises(SystemExit):
        ps_kd(tmp_path, *flags)
    assert f"unrecognized arguments: {' '.join(flags)}" in capsys.readouterr().err
