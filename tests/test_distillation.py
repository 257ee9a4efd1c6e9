"""The word-level KD functions against float64 references written from the formulas."""

import pytest
import torch

from skd_fairseq.distillation import (
    kl_to_teacher,
    mix_with_teacher,
    teacher_distribution,
    tempered_log_probs,
    tie_ranking_loss,
)


def random_lprobs(n, v, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(scale * torch.randn(n, v, generator=g), dim=-1)


def reference_kl(student_lprobs, teacher_lprobs_list, temperature, topk=0):
    """KL(q || p_s^(T)) per position, float64, one position at a time."""
    out = []
    for i in range(student_lprobs.size(0)):
        p_t = sum(torch.softmax(t[i].double() / temperature, 0) for t in teacher_lprobs_list)
        p_t = p_t / len(teacher_lprobs_list)
        log_ps = torch.log_softmax(student_lprobs[i].double() / temperature, 0)
        support = range(p_t.numel())
        if topk:
            support = p_t.topk(topk).indices.tolist()
        mass = sum(float(p_t[w]) for w in support)
        out.append(sum(float(p_t[w]) / mass * (torch.log(p_t[w] / mass) - log_ps[w]).item() for w in support))
    return torch.tensor(out, dtype=torch.float64)


def test_tempered_log_probs_equal_log_softmax_of_logits_over_t():
    logits = 4 * torch.randn(5, 11)
    lprobs = torch.log_softmax(logits, dim=-1)
    for t in (0.5, 1.0, 3.0):
        assert torch.allclose(tempered_log_probs(lprobs, t), torch.log_softmax(logits / t, -1), atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("topk", [0, 4])
@pytest.mark.parametrize("teachers", [1, 3])
def test_kl_equals_reference(temperature, topk, teachers):
    student = random_lprobs(7, 13, seed=0)
    teacher_list = [random_lprobs(7, 13, seed=1 + j) for j in range(teachers)]
    probs, ids = teacher_distribution(iter(teacher_list), temperature, topk)
    kl = kl_to_teacher(tempered_log_probs(student, temperature), probs, ids, reduce=False)
    want = reference_kl(student, teacher_list, temperature, topk)
    assert torch.allclose(kl.double(), want, atol=1e-5)
    assert (kl >= -1e-6).all()


def test_teacher_distribution_averages_probabilities_not_log_probabilities():
    a, b = random_lprobs(4, 9, seed=3), random_lprobs(4, 9, seed=4)
    probs, ids = teacher_distribution([a, b], 1.0)
    assert ids is None
    assert torch.allclose(probs, (a.exp() + b.exp()) / 2, atol=1e-7)
    assert not torch.allclose(probs, torch.softmax((a + b) / 2, -1), atol=1e-3)


def test_topk_keeps_the_most_probable_tokens_renormalised():
    teacher = random_lprobs(6, 20, seed=5)
    probs, ids = teacher_distribution([teacher], 2.0, topk=5)
    full = torch.softmax(teacher / 2.0, -1)
    assert torch.equal(ids, full.topk(5, dim=-1).indices)
    assert torch.allclose(probs.sum(-1), torch.ones(6))
    want = full.gather(-1, ids)
    assert torch.allclose(probs, want / want.sum(-1, keepdim=True), atol=1e-6)


def test_topk_of_the_whole_vocabulary_is_the_full_kl():
    student, teacher = random_lprobs(8, 10, seed=6), random_lprobs(8, 10, seed=7)
    full = kl_to_teacher(student, *teacher_distribution([teacher], 1.0, topk=0))
    probs, ids = teacher_distribution([teacher], 1.0, topk=10)
    assert ids is None  # K = V needs no gather
    assert torch.allclose(kl_to_teacher(student, probs, ids), full)
    probs, ids = teacher.exp().topk(10, dim=-1)
    assert torch.allclose(kl_to_teacher(student, probs, ids), full, atol=1e-6)


def test_kl_is_zero_against_itself_and_masks_padding():
    lprobs = random_lprobs(5, 12, seed=8)
    probs, ids = teacher_distribution([lprobs], 1.0)
    assert torch.allclose(kl_to_teacher(lprobs, probs, ids, reduce=False), torch.zeros(5), atol=1e-6)
    other = random_lprobs(5, 12, seed=9)
    pad = torch.tensor([False, True, False, True, False])
    kl = kl_to_teacher(other, probs, ids, pad_mask=pad, reduce=False)
    assert (kl[pad] == 0).all() and (kl[~pad] > 0).all()
    assert torch.allclose(kl_to_teacher(other, probs, ids, pad_mask=pad), kl.sum())


def test_gradient_reaches_the_student_only_and_matches_float64():
    logits = torch.randn(6, 9, requires_grad=True)
    teacher = random_lprobs(6, 9, seed=10)
    probs, ids = teacher_distribution([teacher], 2.0, topk=4)
    assert not probs.requires_grad
    kl_to_teacher(tempered_log_probs(torch.log_softmax(logits, -1), 2.0), probs, ids).backward()
    logits64 = logits.detach().double().requires_grad_()
    log_ps = torch.log_softmax(logits64 / 2.0, -1).gather(-1, ids)
    (probs.double() * (probs.double().log() - log_ps)).sum().backward()
    assert torch.allclose(logits.grad.double(), logits64.grad, atol=1e-6)


def test_mix_with_teacher_weights_the_two_losses():
    data, teacher = torch.tensor(3.0), torch.tensor(0.5)
    assert float(mix_with_teacher(data, teacher, 0.25)) == pytest.approx(0.75 * 3.0 + 0.25 * 0.5)
    assert torch.equal(mix_with_teacher(data, teacher, 0.0), data)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        mix_with_teacher(data, teacher, 1.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"temperature": 1.0, "topk": -1}, "topk must be >= 0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        teacher_distribution([random_lprobs(2, 3, seed=0)], **kwargs)


def reference_ranking_loss(student_probs, teacher_probs, k):
    """TIE-KD's L_top1 + L_topk, float64, one position and one pair at a time."""
    out = []
    for p_s, p_t in zip(student_probs.double(), teacher_probs.double()):
        t = p_t.topk(k).indices.tolist()
        s = p_s.topk(k).indices.tolist()
        top1 = sum(max(0.0, float(p_s[t[j]] - p_s[t[0]])) for j in range(1, k))
        topk = sum(max(0.0, float(p_s[sj] - p_s[ti])) for ti in t for sj in s if p_t[ti] > p_t[sj])
        out.append(top1 + topk)
    return torch.tensor(out, dtype=torch.float64)


def test_ranking_loss_of_hand_made_probabilities():
    teacher = torch.tensor([[0.5, 0.3, 0.1, 0.05, 0.05]])
    student = torch.tensor([[0.1, 0.2, 0.6, 0.05, 0.05]])
    # L_top1: p_s(1) - p_s(0) = 0.1; L_topk: (0 over 2) 0.5 + (0 over 1) 0.1 + (1 over 2) 0.4
    loss = tie_ranking_loss(student, teacher, None, k=2)
    assert float(loss) == pytest.approx(1.1, abs=1e-6)


def test_ranking_loss_is_zero_when_the_student_orders_like_the_teacher():
    teacher = torch.softmax(3 * torch.randn(6, 15), -1)
    sharper = torch.softmax(2 * teacher.log(), -1)  # same order, different values
    for student in (teacher, sharper):
        assert float(tie_ranking_loss(student, teacher, None, k=5)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("topk", [0, 8])
def test_ranking_loss_equals_reference(topk):
    student = torch.softmax(2 * torch.randn(9, 12, generator=torch.Generator().manual_seed(11)), -1)
    teacher_lprobs = random_lprobs(9, 12, seed=12)
    probs, ids = teacher_distribution([teacher_lprobs], 1.0, topk)
    loss = tie_ranking_loss(student, probs, ids, k=4, reduce=False)
    # Truncation renormalises the teacher, which keeps its order among the kept tokens,
    # and a token outside them is below all of them: the loss is the full one's.
    assert torch.allclose(loss.double(), reference_ranking_loss(student, teacher_lprobs.exp(), 4), atol=1e-6)
    assert (loss > 0).any()


def test_ranking_loss_masks_padding_and_sends_gradient_to_the_student():
    logits = torch.randn(4, 10, requires_grad=True)
    teacher = random_lprobs(4, 10, seed=13).exp()
    pad = torch.tensor([False, False, True, False])
    loss = tie_ranking_loss(torch.softmax(logits, -1), teacher, None, k=3, pad_mask=pad, reduce=False)
    assert loss[2] == 0
    loss.sum().backward()
    assert logits.grad.abs().sum() > 0 and (logits.grad[2] == 0).all()
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\]"):
        tie_ranking_loss(torch.softmax(logits, -1), teacher, None, k=11)
