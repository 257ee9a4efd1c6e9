"""Soft targets, the SKD loss and the alpha schedule against straightforward references."""

import pathlib
import subprocess
import sys

import pytest
import torch
from references import reference_gold_mass_temperature, reference_loss, reference_soft_targets

import skd_fairseq
from skd_fairseq.losses import (
    check_gold_mass,
    gold_mass_soft_targets,
    label_smoothed_skd_loss,
    skd_soft_targets,
)
from skd_fairseq.schedule import check_schedule, skd_alpha
from skd_fairseq.similarity import SIMILARITIES

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


def gold_first(n, k, scale, generator):
    """[n, k+1] similarities whose column 0 (the gold token's with itself) is the row maximum."""
    sims = torch.randn(n, k + 1, generator=generator) * scale
    sims[:, 0] = sims.max(-1).values + torch.rand(n, generator=generator) * scale
    return sims


@pytest.mark.parametrize("k", [1, 2, 8, 64])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 300.0])
def test_gold_mass_is_met_to_1e5_and_tau_equals_a_float64_bisection(k, scale):
    g = torch.Generator().manual_seed(k)
    sims = gold_first(40, k, scale, g)
    lowest = 1.0 / (k + 1)
    for fraction in (0.001, 0.3, 0.7, 0.999):
        rho = lowest + (1 - lowest) * fraction
        q, tau = gold_mass_soft_targets(sims, rho)
        assert q.dtype == torch.float32 and tau.shape == (40,)
        torch.testing.assert_close(q[:, 0], torch.full((40,), rho), rtol=0, atol=1e-5)
        torch.testing.assert_close(q.sum(-1), torch.ones(40))
        # q is softmax(s / tau) with the solved tau, and tau is the float64 root.
        torch.testing.assert_close(q, torch.softmax(sims / tau.unsqueeze(-1), -1), rtol=1e-4, atol=1e-5)
        want = torch.tensor([reference_gold_mass_temperature(row, rho) for row in sims[:5]])
        torch.testing.assert_close(tau[:5].double(), want.double(), rtol=1e-3, atol=0)


def test_gold_mass_holds_when_the_gaps_span_nine_orders_of_magnitude():
    g = torch.Generator().manual_seed(0)
    for k in (1, 5, 64):
        gaps = 10 ** torch.empty(200, k).uniform_(-6, 3, generator=g)
        sims = torch.cat([torch.zeros(200, 1), -gaps], dim=-1)
        lowest = 1.0 / (k + 1)
        for rho in (lowest + 1e-4, (lowest + 1) / 2, 0.99, 0.99999):
            q, _ = gold_mass_soft_targets(sims, rho)
            torch.testing.assert_close(q[:, 0], torch.full((200,), rho), rtol=0, atol=1e-5)


def test_gold_mass_tau_limits_and_monotonicity():
    sims = torch.tensor([[1.0, 0.5, 0.2, -0.3]])
    taus = [float(gold_mass_soft_targets(sims, rho)[1]) for rho in (0.2501, 0.3, 0.5, 0.9, 0.999999)]
    assert all(a > b for a, b in zip(taus, taus[1:]))  # more gold mass, colder q
    assert taus[0] > 100 and taus[-1] < 0.05  # rho -> 1/(k+1): tau -> inf; rho -> 1: tau -> 0


def test_gold_mass_with_ties():
    # Every similarity equal (a zero embedding under cosine): q is uniform at any tau, and
    # no tau reaches rho > 1/(k+1): the limit tau -> 0 is reported as 0.
    q, tau = gold_mass_soft_targets(torch.zeros(3, 5), 0.5)
    torch.testing.assert_close(q, torch.full((3, 5), 0.2))
    assert (tau == 0).all()
    # One candidate ties with the gold token: rho < 1/2 is reachable, rho >= 1/2 gives the
    # limit, half on the gold token and half on its tie.
    sims = torch.tensor([[1.0, 1.0, 0.5, 0.0]])
    q, tau = gold_mass_soft_targets(sims, 0.4)
    assert float(q[0, 0]) == pytest.approx(0.4, abs=1e-5) and float(q[0, 1]) == pytest.approx(0.4, abs=1e-5)
    assert float(tau) > 0
    q, tau = gold_mass_soft_targets(sims, 0.6)
    torch.testing.assert_close(q, torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
    assert float(tau) == 0
    # A candidate a rounding error above the gold token counts as a tie, not as a winner.
    q, _ = gold_mass_soft_targets(torch.tensor([[1.0, 1.0 + 1e-7, 0.0]]), 0.45)
    assert float(q[0, 0]) == pytest.approx(0.45, abs=1e-5)


def test_gold_mass_carries_no_gradient():
    embeddings, _, target, candidates = random_batch(seed=6)
    weight = embeddings.clone().requires_grad_()
    q, tau = skd_soft_targets(weight, target, candidates, "cosine", gold_mass=0.7, return_temperature=True)
    assert q.grad_fn is None and tau.grad_fn is None and not q.requires_grad
    sims = torch.randn(4, 3, requires_grad=True)
    q, tau = gold_mass_soft_targets(sims, 0.6)
    assert not q.requires_grad and not tau.requires_grad


@pytest.mark.parametrize("similarity", ["cosine", "l2"])
def test_soft_targets_at_a_gold_mass_equal_the_reference_at_the_solved_tau(similarity):
    embeddings, _, target, candidates = random_batch(seed=7)
    candidates = torch.where(candidates.eq(target.unsqueeze(-1)), (candidates - 3) % 46 + 4, candidates)  # no ties
    q, tau = skd_soft_targets(embeddings, target, candidates, similarity, gold_mass=0.6, return_temperature=True)
    torch.testing.assert_close(q[:, 0], torch.full((37,), 0.6), rtol=0, atol=1e-5)
    for i in range(0, 37, 6):
        want = reference_soft_targets(embeddings, target[i : i + 1], candidates[i : i + 1], similarity, float(tau[i]))
        torch.testing.assert_close(q[i : i + 1].double(), want, rtol=1e-4, atol=1e-5)


def test_gold_mass_arguments_are_checked():
    embeddings, _, target, candidates = random_batch()
    with pytest.raises(ValueError, match="exactly one of temperature and gold_mass"):
        skd_soft_targets(embeddings, target, candidates, "cosine", 1.0, gold_mass=0.5)
    with pytest.raises(ValueError, match="exactly one of temperature and gold_mass"):
        skd_soft_targets(embeddings, target, candidates, "cosine")
    with pytest.raises(ValueError, match="cosine or l2"):
        skd_soft_targets(embeddings, target, candidates, "dot", gold_mass=0.5)
    for rho in (0.2, 1.0, 1.5):  # k = 4: (0.2, 1)
        with pytest.raises(ValueError, match=r"gold mass must be in \(1/\(k\+1\), 1\) = \(0.2, 1\)"):
            check_gold_mass(rho, 4)


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
            want_loss, want_nll = label_smoothed_nll_loss(lprobs, target, 0.1, ignore_index=ignore_index, reduce=reduce)
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
    assert [skd_alpha(u, 0.6, 10, 4) for u in range(10, 16)] == pytest.approx([0.15, 0.3, 0.45, 0.6, 0.6, 0.6])
    # W = 0: alpha_max at once.
    assert skd_alpha(10, 0.6, 10, 0) == 0.6 and skd_alpha(0, 0.6) == 0.6
    # A function of u alone: a resumed run at update 12 continues where it stopped.
    assert skd_alpha(12, 0.6, 10, 4) == skd_alpha(12, 0.6, 10, 4) == pytest.approx(0.45)


@pytest.mark.parametrize(
    "args, flag",
    [
        ((1.2, 0, 0), "--skd-alpha"),
        ((-0.1, 0, 0), "--skd-alpha"),
        ((0.5, -1, 0), "--skd-start-update"),
        ((0.5, 0, -3), "--skd-warmup-updates"),
    ],
)
def test_schedule_rejects_bad_values(args, flag):
    with pytest.raises(ValueError, match=flag):
        check_schedule(*args)


PURE_CHECK = """
import importlib, importlib.machinery, sys, types
sys.modules["fairseq"] = None  # any import of fairseq now fails
# The package without its __init__ (which registers the criteria with fairseq): a bare parent.
package = types.ModuleType("skd_fairseq")
package.__path__ = [sys.argv[1]]
sys.modules["skd_fairseq"] = package
importlib.import_module("skd_fairseq." + sys.argv[2])
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", skd_fairseq.PURE_MODULES)
def test_pure_modules_import_where_fairseq_cannot_be_imported(name):
    package = pathlib.Path(skd_fairseq.__file__).parent
    proc = subprocess.run([sys.executable, "-c", PURE_CHECK, str(package), name], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_the_pure_check_fails_for_a_module_that_imports_fairseq():
    package = pathlib.Path(skd_fairseq.__file__).parent
    proc = subprocess.run(
        [sys.executable, "-c", PURE_CHECK, str(package), "criterions.scores"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "fairseq" in proc.stderr
