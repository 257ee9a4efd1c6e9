"""``label_smoothed_word_kd`` in process: teacher loading and its errors, the loss, composition with SKD."""

import pytest
import torch
from conftest import build_translation, save_teacher, translation_sample
from fairseq.logging import metrics
from omegaconf import OmegaConf

from skd_fairseq.criterions.teacher import check_teacher_task, registered_task_name
from skd_fairseq.distillation import kl_to_teacher, teacher_distribution, tempered_log_probs

LS = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
SKD = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0.1"]
KD = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0.1"]

# Every test writes a teacher checkpoint with fairseq's Trainer: seconds each, not in the fast tier.
pytestmark = pytest.mark.slow


def student_with_teacher(tmp_path, teacher_path, *flags):
    return build_translation(tmp_path / "student", KD + ["--kd-teacher-path", teacher_path, *flags])


def flat(lprobs):
    return lprobs.view(-1, lprobs.size(-1))


def test_loss_is_the_mix_of_label_smoothing_and_the_teacher_kl(tmp_path, fresh_metrics):
    teacher_path, teacher = save_teacher(tmp_path / "teacher", seed=1)
    (tmp_path / "student").mkdir()
    task, model, kd, _ = student_with_teacher(
        tmp_path, teacher_path, "--kd-weight", "0.3", "--kd-temperature", "2", "--kd-teacher-topk", "7"
    )
    _, _, ls, _ = build_translation(tmp_path / "student", LS)
    sample = translation_sample(task, seed=3)
    model.train()
    loss, _, log = kd(model, sample)
    ls_loss, _, ls_log = ls(model, sample)
    teacher.eval()
    with torch.no_grad():
        t_lprobs = flat(teacher.get_normalized_probs(teacher(**sample["net_input"]), log_probs=True))
        s_lprobs = flat(model.get_normalized_probs(model(**sample["net_input"]), log_probs=True))
    target = sample["target"].view(-1)
    pad = target.eq(task.target_dictionary.pad())
    kl = kl_to_teacher(tempered_log_probs(s_lprobs, 2.0), *teacher_distribution([t_lprobs], 2.0, 7), pad_mask=pad)
    assert float(loss.detach()) == pytest.approx(0.7 * float(ls_loss.detach()) + 0.3 * 4.0 * float(kl), rel=1e-5)
    assert float(log["kd_kl"]) == pytest.approx(float(kl), rel=1e-5)
    assert int(log["kd_ntokens"]) == sample["ntokens"] and log["kd_weight"] == 0.3
    assert torch.equal(log["nll_loss"], ls_log["nll_loss"])


def test_teacher_equal_to_the_student_gives_zero_kl(tmp_path, fresh_metrics):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    (tmp_path / "student").mkdir()
    task, model, kd, _ = student_with_teacher(tmp_path, teacher_path, "--kd-weight", "0.4")
    _, _, ls, _ = build_translation(tmp_path / "student", LS)
    kd.teacher.models[0].load_state_dict(model.state_dict())
    sample = translation_sample(task)
    model.train()
    loss, _, log = kd(model, sample)
    assert abs(float(log["kd_kl"])) < 1e-4
    assert float(loss.detach()) == pytest.approx(0.6 * float(ls(model, sample)[0].detach()), abs=1e-4)


def test_kd_weight_zero_is_exactly_the_skd_criterion(tmp_path, fresh_metrics):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    (tmp_path / "student").mkdir()
    task, model, kd, _ = student_with_teacher(tmp_path, teacher_path, "--kd-weight", "0", "--skd-alpha", "0.3")
    _, _, skd, _ = build_translation(tmp_path / "student", SKD + ["--skd-alpha", "0.3"])
    sample = translation_sample(task, seed=4)
    model.train()
    model.zero_grad()
    loss, _, _ = kd(model, sample)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    want, _, _ = skd(model, sample)
    want.backward()
    assert torch.equal(loss, want)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))


def test_skd_inside_word_kd_mixes_the_skd_loss(tmp_path, fresh_metrics):
    teacher_path, _ = save_teacher(tmp_path / "teacher", seed=2)
    (tmp_path / "student").mkdir()
    task, model, both, _ = student_with_teacher(
        tmp_path, teacher_path, "--kd-weight", "0.5", "--skd-alpha", "0.4", "--skd-candidates", "predicted"
    )
    _, _, skd, _ = build_translation(
        tmp_path / "student", SKD + ["--skd-alpha", "0.4", "--skd-candidates", "predicted"]
    )
    sample = translation_sample(task, seed=5)
    model.train()
    loss, _, log = both(model, sample)
    skd_loss, _, skd_log = skd(model, sample)
    assert float(loss.detach()) == pytest.approx(0.5 * float(skd_loss.detach()) + 0.5 * float(log["kd_kl"]), rel=1e-5)
    assert torch.equal(log["skd_loss"], skd_log["skd_loss"])


def test_validation_is_label_smoothed_cross_entropy_and_runs_no_teacher(tmp_path, fresh_metrics):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    (tmp_path / "student").mkdir()
    task, model, kd, _ = student_with_teacher(tmp_path, teacher_path, "--kd-weight", "0.9", "--skd-alpha", "0.5")
    _, _, ls, _ = build_translation(tmp_path / "student", LS)
    kd.teacher.log_probs = None  # any call would fail
    sample = translation_sample(task, seed=6)
    model.eval()
    with torch.no_grad():
        loss, _, log = kd(model, sample)
        want, _, _ = ls(model, sample)
    assert torch.equal(loss, want)
    assert not any(key.startswith(("kd_", "skd_")) for key in log)


def test_teacher_is_frozen_and_not_a_parameter_of_the_criterion(tmp_path, fresh_metrics):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    (tmp_path / "student").mkdir()
    task, model, kd, _ = student_with_teacher(tmp_path, teacher_path)
    assert list(kd.parameters()) == []  # not trained, not saved in checkpoints, not DDP-wrapped
    teacher = kd.teacher.models[0]
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    model.train()
    kd.train()
    loss, _, _ = kd(model, translation_sample(task))
    loss.backward()
    assert not teacher.training and all(p.grad is None for p in teacher.parameters())
    half = model.to(torch.bfloat16)
    loss, _, _ = kd(half, translation_sample(task))
    assert torch.isfinite(loss)
    assert all(p.dtype == torch.bfloat16 for p in teacher.parameters())


def test_an_ensemble_averages_the_teachers_probabilities(tmp_path, fresh_metrics):
    first, t1 = save_teacher(tmp_path / "t1", seed=1)
    second, t2 = save_teacher(tmp_path / "t2", seed=2)
    (tmp_path / "student").mkdir()
    task, model, kd, _ = student_with_teacher(tmp_path, f"{first}:{second}", "--kd-weight", "1")
    assert len(kd.teacher.models) == 2
    sample = translation_sample(task, seed=7)
    model.train()
    _, _, log = kd(model, sample)
    with torch.no_grad():
        teachers = [flat(t.eval().get_normalized_probs(t(**sample["net_input"]), log_probs=True)) for t in (t1, t2)]
        student = flat(model.get_normalized_probs(model(**sample["net_input"]), log_probs=True))
    mean = (teachers[0].exp() + teachers[1].exp()) / 2
    pad = sample["target"].view(-1).eq(task.target_dictionary.pad())
    assert float(log["kd_kl"]) == pytest.approx(float(kl_to_teacher(student, mean, pad_mask=pad)), rel=1e-5)


def test_reduce_metrics_logs_the_kl_in_training_only(tmp_path, fresh_metrics):
    teacher_path, _ = save_teacher(tmp_path / "teacher", seed=1)
    (tmp_path / "student").mkdir()
    task, model, kd, _ = student_with_teacher(tmp_path, teacher_path)
    model.train()
    logs = [kd(model, translation_sample(task, seed=s))[2] for s in range(3)]
    with metrics.aggregate() as agg:
        type(kd).reduce_metrics(logs)
    ntok = sum(int(log["kd_ntokens"]) for log in logs)
    kl = sum(float(log["kd_kl"]) for log in logs)
    assert agg.get_smoothed_values()["kd_kl"] == pytest.approx(
        kl / ntok / torch.log(torch.tensor(2.0)).item(), abs=1e-4
    )
    model.eval()
    with torch.no_grad():
        valid = [kd(model, translation_sample(task, seed=s))[2] for s in range(2)]
    with metrics.aggregate() as agg:
        type(kd).reduce_metrics(valid)
    assert "kd_kl" not in agg.get_smoothed_values()


def test_dictionary_mismatch_names_both_sizes_and_the_first_difference(tmp_path):
    teacher_path, _ = save_teacher(tmp_path / "teacher", n_words=70)
    (tmp_path / "student").mkdir()
    with pytest.raises(ValueError) as err:
        student_with_teacher(tmp_path, teacher_path)
    message = str(err.value)
    assert "--kd-teacher-path" in message and "source dictionary" in message
    assert ", 80 symbols)" in message and "(64 symbols)" in message  # 4 specials + words, padded to 8
    assert "first at id 64: teacher 'w60', student '(none)'" in message and "--srcdict" in message


def test_a_teacher_of_the_other_direction_is_refused_even_with_the_same_dictionaries(tmp_path):
    # Joined dictionaries make an en-de teacher's dictionaries those of a de-en student.
    teacher_path, _ = save_teacher(tmp_path / "teacher", langs=("en", "de"))
    (tmp_path / "student").mkdir()
    with pytest.raises(
        ValueError,
        match=r"--kd-teacher-path: teacher .* translates en-de, the student de-en; "
        r"give a teacher trained for de-en \(-s de -t en\)",
    ):
        student_with_teacher(tmp_path, teacher_path)


def test_a_dictionary_of_the_same_size_with_other_symbols_is_refused(tmp_path):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    target_dict = tmp_path / "teacher" / "data" / "dict.en.txt"
    target_dict.write_text(target_dict.read_text().replace("w10 ", "other "))
    (tmp_path / "student").mkdir()
    with pytest.raises(ValueError, match=r"target dictionary .* first at id 14: teacher 'other', student 'w10'"):
        student_with_teacher(tmp_path, teacher_path)


def test_the_teacher_dictionary_is_found_beside_the_checkpoint(tmp_path, fresh_metrics):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (tmp_path / "teacher" / "checkpoint.pt").rename(moved / "checkpoint.pt")
    data = tmp_path / "teacher" / "data"
    for lang in ("de", "en"):
        (data / f"dict.{lang}.txt").rename(tmp_path / f"dict.{lang}.txt")
    (tmp_path / "student").mkdir()
    with pytest.raises(FileNotFoundError, match=r"cannot find the teacher's dict\.de\.txt .*copy"):
        student_with_teacher(tmp_path, str(moved / "checkpoint.pt"))
    for lang in ("de", "en"):
        (tmp_path / f"dict.{lang}.txt").rename(moved / f"dict.{lang}.txt")
    _, _, kd, _ = student_with_teacher(tmp_path, str(moved / "checkpoint.pt"))
    assert len(kd.teacher.models) == 1


@pytest.mark.parametrize(
    "flags, error, message",
    [
        ([], ValueError, "--kd-teacher-path is required"),
        (
            ["--kd-teacher-path", "/nonexistent/checkpoint.pt"],
            FileNotFoundError,
            "teacher checkpoint '/nonexistent/checkpoint.pt' not found",
        ),
        (["--kd-teacher-path", "TEACHER:"], ValueError, "--kd-teacher-path is required"),
        (["--kd-teacher-path", "GARBAGE"], ValueError, "cannot read teacher checkpoint"),
        (["--kd-teacher-path", "TEACHER", "--kd-weight", "1.5"], ValueError, r"--kd-weight must be in \[0, 1\]"),
        (["--kd-teacher-path", "TEACHER", "--kd-temperature", "0"], ValueError, "--kd-temperature must be > 0"),
        (["--kd-teacher-path", "TEACHER", "--kd-teacher-topk", "-2"], ValueError, "--kd-teacher-topk must be >= 0"),
    ],
)
def test_bad_teacher_flags_fail_when_the_criterion_is_built(tmp_path, flags, error, message):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    flags = [f.replace("TEACHER", teacher_path).replace("GARBAGE", str(garbage)) for f in flags]
    (tmp_path / "student").mkdir()
    with pytest.raises(error, match=message):
        build_translation(tmp_path / "student", KD + flags)


def test_a_teacher_of_another_task_is_refused(tmp_path):
    teacher_path, _ = save_teacher(tmp_path / "teacher")
    (tmp_path / "student").mkdir()
    task, _, _, _ = build_translation(tmp_path / "student", ["--criterion", "label_smoothed_cross_entropy"])
    assert registered_task_name(task) == "translation"
    lm_cfg = OmegaConf.create({"_name": "language_modeling", "data": str(tmp_path)})
    with pytest.raises(ValueError, match="trained for --task language_modeling, the student runs --task translation"):
        check_teacher_task(teacher_path, lm_cfg, task, "--kd-teacher-path")


def test_sequence_level_distillation_refuses_a_teacher_of_the_other_direction(tmp_path):
    from skd_fairseq.criterions.teacher import check_teacher_data

    teacher_path, _ = save_teacher(tmp_path / "teacher", langs=("en", "de"))
    data = tmp_path / "teacher" / "data"  # the same dictionaries on both sides
    with pytest.raises(ValueError, match=r"--teacher: teacher .* translates en-de, the student de-en"):
        check_teacher_data(teacher_path, str(data), "de", "en", "--teacher")
    check_teacher_data(teacher_path, str(data), "en", "de", "--teacher")  # its own direction passes
