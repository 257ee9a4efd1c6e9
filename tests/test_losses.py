"""Soft targets, the SKD loss and the alpha schedule against straightforward references."""

import ast
import pathlib

import pytest
import torch

from skd_fairseq.losses import label_smoothed_skd_loss, skd_soft_targets
from skd_fairseq.schedule import check_schedule, skd_alpha
from skd_fairseq.similarity import SIMILARITIES

from references import reference_loss, reference_soft_targets

PAD = 1


def random_batch(n=37, vocab=50, dim=12, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(vocab, dim, generator=g)
    lprobs = torch.log_softmax(torch.randn(n, vocab, generator=g), dim=-1)
    target = torch.randint(4, vocab, (n,), generator=g)
    target[::5] = PAD
    candidates = torch.randint(4, vocab, (n, k), generator=g)
    return embeddings, lprobs, target, candidates


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("temperature", [0.1, 1.0, 3.0])
def test_soft_targets_equal_reference(similarity, temperature):
    embeddings, _, target, candidates = random_batch(seed=1)
    q = skd_soft_targets(embeddings, target, candidates, similarity, temperature)
    assert q.shape == (37, 5) and q.dtype == torch.float32 and not q.requires_grad
    torch.testing.assert_close(q.sum(1), torch.ones(37))
    want = reference_soft_targets(embeddings, target, candidates, similarity, temperature)
    torch.testing.assert_close(q.double(), want, rtol=1e-4, atol=1e-5)


def test_soft_targets_are_fp32_without_gradient_from_half_embeddings():
    embeddings, _, target, candidates = random_batch(seed=2)
    weight = embeddings.half().requires_grad_()
    q = skd_soft_targets(weight, target, candidates, "cosine", 0.5)
    assert q.dtype == torch.float32 and q.grad_fn is None
    want = reference_soft_targets(weight.detach().float(), target, candidates, "cosine", 0.5)
    torch.testing.assert_close(q.double(), want, rtol=1e-4, atol=1e-5)


def test_soft_targets_reject_bad_temperature():
    embeddings, _, target, candidates = random_batch()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        skd_soft_targets(embeddings, target, candidates, "cosine", 0.0)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_loss_equals_reference(alpha, eps):
    embeddings, lprobs, target, candidates = random_batch(seed=3)
    q = skd_soft_targets(embeddings, target, candidates, "cosine", 1.0)
    loss, nll, skd = label_smoothed_skd_loss(lprobs, target, candidates, q, alpha, eps, ignore_index=PAD)
    want = reference_loss(lprobs, target, candidates, q, alpha, eps, PAD)
    for got, expected in zip((loss, nll, skd), want):
        assert got.dim() == 0
        assert float(got) == pytest.approx(expected, rel=1e-5)


def test_unreduced_loss_is_per_position_and_zero_at_padding():
    embeddings, lprobs, target, candidates = random_batch(seed=4)
    q = skd_soft_targets(embeddings, target, candidates, "l2", 2.0)
    per_pos = label_smoothed_skd_loss(lprobs, target, candidates, q, 0.4, 0.1, ignore_index=PAD, reduce=False)
    summed = label_smoothed_skd_loss(lprobs, target, candidates, q, 0.4, 0.1, ignore_index=PAD)
    for a, b in zip(per_pos, summed):
        assert a.shape == (37,)
        assert (a[target.eq(PAD)] == 0).all()
        torch.testing.assert_close(a.sum(), b)


def test_gradient_flows_to_lprobs_and_not_through_q():
    embeddings, lprobs, target, candidates = random_batch(seed=5)
    weight = embeddings.clone().requires_grad_()
    lprobs = lprobs.clone().requires_grad_()
    q = skd_soft_targets(weight, target, candidates, "cosine", 1.0)
    loss, _, _ = label_smoothed_skd_loss(lprobs, target, candidates, q, 1.0, 0.0, ignore_index=PAD)
    loss.backward()
    assert weight.grad is None
    # d(-sum_j q_j lp_j)/d lp = -q at the entries, 0 elsewhere and at padding.
    want = torch.zeros_like(lprobs)
    entries = torch.cat([target.unsqueeze(1), candidates], 1)
    want.scatter_add_(1, entries, -q)
    want[target.eq(PAD)] = 0
    torch.testing.assert_close(lprobs.grad, want)


def test_alpha_zero_is_exactly_fairseq_label_smoothed_loss():
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

    embeddings, lprobs, target, candidates = random_batch(n=501, vocab=997, seed=6)
    q = skd_soft_targets(embeddings, target, candidates, "cosine", 1.0)
    for ignore_index in (PAD, None):
        for reduce in (True, False):
            loss, nll, _ = label_smoothed_skd_loss(
                lprobs, target, candidates, q, 0.0, 0.1, ignore_index=ignore_index, reduce=reduce
            )
            want_loss, want_nll = label_smoothed_nll_loss(
                lprobs, target, 0.1, ignore_index=ignore_index, reduce=reduce
            )
            assert torch.equal(loss, want_loss.reshape(loss.shape))
            assert torch.equal(nll, want_nll.reshape(nll.shape))


def test_loss_rejects_alpha_outside_unit_interval():
    embeddings, lprobs, target, candidates = random_batch()
    q = skd_soft_targets(embeddings, target, candidates, "cosine", 1.0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        label_smoothed_skd_loss(lprobs, target, candidates, q, 1.5, 0.1)


def test_alpha_schedule():
    # Before the start update: 0.
    assert skd_alpha(0, 0.6, start_update=10, warmup_updates=4) == 0.0
    assert skd_alpha(9, 0.6, start_update=10, warmup_updates=4) == 0.0
    # Linear rise over W updates: alpha_max * (u - u0 + 1) / W.
    assert [skd_alpha(u, 0.6, 10, 4) for u in range(10, 16)] == pytest.approx(
        [0.15, 0.3, 0.45, 0.6, 0.6, 0.6]
    )
    # W = 0: alpha_max at once.
    assert skd_alpha(10, 0.6, 10, 0) == 0.6 and skd_alpha(0, 0.6) == 0.6
    # A function of u alone: a resumed run at update 12 continues where it stopped.
    assert skd_alpha(12, 0.6, 10, 4) == skd_alpha(12, 0.6, 10, 4) == pytest.approx(0.45)


@pytest.mark.parametrize(
    "args, flag",
    [((1.2, 0, 0), "--skd-alpha"), ((-0.1, 0, 0), "--skd-alpha"),
     ((0.5, -1, 0), "--skd-start-update"), ((0.5, 0, -3), "--skd-warmup-updates")],
)
def test_schedule_rejects_bad_values(args, flag):
    with pytest.raises(ValueError, match=flag):
        check_schedule(*args)


def test_pure_modules_do_not_import_fairseq():
    package = pathlib.Path(__file__).resolve().parents[1] / "skd_fairseq"
    for name in ("similarity.py", "neighbours.py", "losses.py", "schedule.py"):
        tree = ast.parse((package / name).read_text())
        imported = [
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m.split(".")[0] == "fairseq"], name
