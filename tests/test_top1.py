"""SKD's top-1 distance reading (--skd-weighting distance): the weight, the loss, the criterion."""

import math

import pytest
import torch
from conftest import build_language_model, build_translation, lm_sample, translation_sample
from test_adaptive import WIKI103_LIKE, full_log_probs, loss_and_grads

from skd_fairseq.criterions.fairseq_access import excluded_token_ids
from skd_fairseq.losses import distance_weights, top1_distance_loss

TOP1 = [
    "--criterion",
    "label_smoothed_skd",
    "--skd-candidates",
    "predicted",
    "--skd-topk",
    "1",
    "--skd-weighting",
    "distance",
]


def reference_weight(a, b, sigma, weight_max):
    return min(weight_max, math.exp(-sigma * float(((a.double() - b.double()) ** 2).sum())))


def reference_top1(lprobs, target, embeddings, exclude, sigma, weight_max, alpha, eps, pad, cluster=None):
    """Float64, position by position: yhat = argmax of log p over the admissible tokens and the
    gold token (of the gold token's cluster, given each id's ``cluster``); sums of the loss,
    -log p(yhat) and w, and how often yhat is the gold token."""
    V = lprobs.size(1)
    cluster = cluster if cluster is not None else [0] * V
    total = top1_total = weight_total = 0.0
    gold_count = 0
    for i, t in enumerate(target.tolist()):
        if t == pad:
            continue
        row = lprobs[i].double()
        allowed = [w for w in range(V) if (w not in exclude and cluster[w] == cluster[t]) or w == t]
        yhat = max(allowed, key=lambda w: (float(row[w]), w == t))
        w = reference_weight(embeddings[t], embeddings[yhat], sigma, weight_max)
        eps_i = eps / (V - 1)
        ls = (1 - eps - eps_i) * -float(row[t]) + eps_i * -float(row.sum())
        total += (1 - alpha * w) * ls + alpha * w * -float(row[yhat])
        top1_total += -float(row[yhat])
        weight_total += w
        gold_count += yhat == t
    return total, top1_total, weight_total, gold_count


def test_distance_weights_equal_the_float64_formula_with_the_cap():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 16, generator=g) * 0.3
    b = a + torch.randn(50, 16, generator=g) * torch.linspace(0, 1, 50).unsqueeze(1)
    squared = lambda x, y: (x.float() - y.float()).pow(2).sum(-1)  # noqa: E731
    for sigma, cap in [(0.5, 0.5), (3.0, 1.0), (0.01, 0.2)]:
        w = distance_weights(squared(a, b), sigma, cap)
        want = torch.tensor([reference_weight(x, y, sigma, cap) for x, y in zip(a, b)], dtype=torch.float64)
        assert w.dtype == torch.float32
        torch.testing.assert_close(w.double(), want, rtol=1e-5, atol=1e-7)
        assert float(w.max()) == pytest.approx(cap)  # the first rows are (nearly) the same token
    # A distance of 0 (the same token) or rounded below 0 gives exactly the cap; fp16 is taken in fp32.
    w = distance_weights(torch.tensor([0.0, -1e-7, 4.0]).half(), 2.0, 0.5)
    assert w.dtype == torch.float32 and w.tolist()[:2] == [0.5, 0.5]
    assert w[2] == pytest.approx(math.exp(-8.0), rel=1e-3)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        distance_weights(squared(a, b), 0.0, 0.5)
    with pytest.raises(ValueError, match=r"cap must be in \(0, 1\]"):
        distance_weights(squared(a, b), 1.0, 1.5)


def test_top1_loss_picks_the_gold_token_when_it_ranks_first_and_gives_the_weight_no_gradient():
    logits = torch.tensor([[2.0, 1.0], [0.5, 1.5], [1.0, 1.0]], requires_grad=True)
    picked = torch.log_softmax(logits, -1)  # [gold, best other] for three positions
    distance = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)  # |e_y - e_c|^2 at each position
    loss, nll, top1, w, is_gold = top1_distance_loss(picked, distance, 0.7, 0.5, alpha=0.6, reduce=False)
    # Position 0: gold first (w = cap); 1: the other token first, |e_y - e_c|^2 = 1; 2: a tie goes to gold.
    assert is_gold.tolist() == [True, False, True]
    torch.testing.assert_close(w, torch.tensor([0.5, math.exp(-0.7), 0.5]))
    p = picked.detach()
    want = torch.stack(
        [
            (1 - 0.3) * -p[0, 0] + 0.3 * -p[0, 0],
            (1 - 0.6 * w[1]) * -p[1, 0] + 0.6 * w[1] * -p[1, 1],
            (1 - 0.3) * -p[2, 0] + 0.3 * -p[2, 0],
        ]
    )
    torch.testing.assert_close(loss.detach(), want)
    torch.testing.assert_close(top1.detach(), torch.stack([-p[0, 0], -p[1, 1], -p[2, 0]]))
    loss.sum().backward()
    assert distance.grad is None  # w is a constant, unlike in the public code
    assert logits.grad is not None
    # Padding contributes nothing and counts nowhere.
    pad = torch.tensor([[False], [True], [False]])
    loss, _, _, w, is_gold = top1_distance_loss(picked, distance, 0.7, 0.5, 0.6, pad_mask=pad, reduce=False)
    assert float(loss[1].detach()) == 0 and float(w[1]) == 0 and not bool(is_gold[1])


def test_full_softmax_loss_and_gradients_equal_the_reference(tmp_path, fresh_metrics):
    args = TOP1 + ["--label-smoothing", "0.1", "--skd-alpha", "0.7", "--skd-sigma", "0.8", "--skd-weight-max", "0.6"]
    task, model, criterion, _ = build_translation(tmp_path, args)
    sample = translation_sample(task, seed=5)
    model.train()
    model.zero_grad()
    loss, _, log = criterion(model, sample)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    lprobs, target = criterion.get_lprobs_and_target(model, model(**sample["net_input"]), sample)
    weight = model.decoder.output_projection.weight.detach()
    exclude = set(excluded_token_ids(task.target_dictionary))
    pad = task.target_dictionary.pad()
    want, top1, weights, gold = reference_top1(lprobs.detach(), target, weight, exclude, 0.8, 0.6, 0.7, 0.1, pad)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)
    assert float(log["skd_loss"]) == pytest.approx(top1, rel=1e-5)
    assert float(log["skd_weight"]) == pytest.approx(weights, rel=1e-5)
    assert int(log["skd_top1_gold"]) == gold and int(log["skd_ntokens"]) == sample["ntokens"]
    # The same loss written on [N, V] with the reference's yhat and w as constants.
    V = lprobs.size(1)
    eps_i = 0.1 / (V - 1)
    total = 0
    for i, t in enumerate(target.tolist()):
        if t == pad:
            continue
        allowed = [w for w in range(V) if w not in exclude or w == t]
        yhat = max(allowed, key=lambda w: (float(lprobs[i, w].detach()), w == t))
        w = reference_weight(weight[t], weight[yhat], 0.8, 0.6)
        ls = (1 - 0.1 - eps_i) * -lprobs[i, t] + eps_i * -lprobs[i].sum()
        total = total + (1 - 0.7 * w) * ls + 0.7 * w * -lprobs[i, yhat]
    total.backward()
    for n, p in model.named_parameters():
        if n in grads:
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("candidates", ["cluster", "any"])
def test_adaptive_softmax_loss_and_gradients_equal_the_full_matrix_reference(tmp_path, fresh_metrics, candidates):
    from skd_fairseq.adaptive import cluster_of, embedding_matrix
    from skd_fairseq.criterions.fairseq_access import adaptive_parts

    args = TOP1 + [
        "--label-smoothing",
        "0",
        "--skd-alpha",
        "0.5",
        "--skd-sigma",
        "0.3",
        "--skd-adaptive-candidates",
        candidates,
    ]
    task, model, criterion, _ = build_language_model(
        tmp_path, args, arch_args=WIKI103_LIKE + ["--adaptive-softmax-dropout", "0"]
    )
    sample = lm_sample(task, seed=2)
    loss, log, grads = loss_and_grads(model, criterion, sample)

    softmax = model.decoder.adaptive_softmax
    model.zero_grad()
    lprobs = full_log_probs(softmax, model(**sample["net_input"])[0])
    target = sample["target"].view(-1)
    pad = task.target_dictionary.pad()
    parts = adaptive_parts(softmax)
    E = embedding_matrix(parts)
    exclude = set(excluded_token_ids(task.target_dictionary))
    # Cluster candidates: yhat is the most probable word of the gold word's own cluster.
    cluster = cluster_of(torch.arange(len(E)), parts.cutoff).tolist() if candidates == "cluster" else None
    want, top1, weights, gold = reference_top1(lprobs.detach(), target, E, exclude, 0.3, 0.5, 0.5, 0.0, pad, cluster)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)
    assert float(log["skd_loss"]) == pytest.approx(top1, rel=1e-5)
    assert float(log["skd_weight"]) == pytest.approx(weights, rel=1e-5)
    assert int(log["skd_top1_gold"]) == gold
    total = 0
    cluster = cluster or [0] * lprobs.size(1)
    for i, t in enumerate(target.tolist()):
        if t == pad:
            continue
        allowed = [w for w in range(lprobs.size(1)) if (w not in exclude and cluster[w] == cluster[t]) or w == t]
        yhat = max(allowed, key=lambda w: (float(lprobs[i, w].detach()), w == t))
        w = reference_weight(E[t], E[yhat], 0.3, 0.5)
        total = total + (1 - 0.5 * w) * -lprobs[i, t] + 0.5 * w * -lprobs[i, yhat]
    total.backward()
    for n, p in model.named_parameters():
        if n in grads:
            scale = max(1.0, float(grads[n].abs().max()))
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-5 * scale)


def test_alpha_zero_and_validation_are_label_smoothed_cross_entropy(tmp_path, fresh_metrics):
    ls = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
    task, model, top1, _ = build_translation(
        tmp_path, TOP1 + ["--label-smoothing", "0.1", "--skd-sigma", "1", "--skd-alpha", "1", "--skd-start-update", "5"]
    )
    _, _, plain, _ = build_translation(tmp_path, ls)
    sample = translation_sample(task, seed=1)
    model.train()
    torch.manual_seed(0)
    loss, _, log = top1(model, sample)  # update 0 < the start update: alpha 0
    torch.manual_seed(0)
    assert torch.equal(loss, plain(model, sample)[0])
    assert set(log) >= {"skd_loss", "skd_weight", "skd_top1_gold", "skd_ntokens"} and log["skd_ntokens"] == 0
    model.eval()
    top1.set_num_updates(10)
    with torch.no_grad():
        assert torch.equal(top1(model, sample)[0], plain(model, sample)[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--skd-weighting", "distance", "--skd-candidates", "predicted", "--skd-topk", "1"],
            r"--skd-weighting distance needs --skd-sigma S > 0",
        ),
        (
            ["--skd-weighting", "distance", "--skd-candidates", "predicted", "--skd-topk", "1", "--skd-sigma", "0"],
            r"--skd-sigma: sigma must be > 0, got 0",
        ),
        (
            [
                "--skd-weighting",
                "distance",
                "--skd-candidates",
                "predicted",
                "--skd-topk",
                "1",
                "--skd-sigma",
                "1",
                "--skd-weight-max",
                "0",
            ],
            r"--skd-weight-max: the weight cap must be in \(0, 1\], got 0",
        ),
        (
            ["--skd-weighting", "distance", "--skd-candidates", "neighbours", "--skd-topk", "1", "--skd-sigma", "1"],
            r"needs --skd-candidates predicted --skd-topk 1 \(got --skd-candidates neighbours --skd-topk 1\)",
        ),
        (
            ["--skd-weighting", "distance", "--skd-candidates", "predicted", "--skd-topk", "2", "--skd-sigma", "1"],
            r"needs --skd-candidates predicted --skd-topk 1",
        ),
        (
            [
                "--skd-weighting",
                "distance",
                "--skd-candidates",
                "predicted",
                "--skd-topk",
                "1",
                "--skd-sigma",
                "1",
                "--skd-gold-mass",
                "0.8",
            ],
            r"--skd-temperature and --skd-gold-mass shape the softmax target",
        ),
        (
            [
                "--skd-weighting",
                "distance",
                "--skd-candidates",
                "predicted",
                "--skd-topk",
                "1",
                "--skd-sigma",
                "1",
                "--skd-similarity",
                "l2",
            ],
            r"--skd-similarity l2: --skd-weighting distance uses the squared Euclidean",
        ),
        (["--skd-sigma", "1"], r"--skd-sigma belongs to --skd-weighting distance"),
        (["--skd-weight-max", "0.5"], r"--skd-weight-max belongs to --skd-weighting distance"),
    ],
)
def test_bad_weighting_flags_are_refused_with_the_flags_name(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        build_translation(tmp_path, ["--criterion", "label_smoothed_skd", "--label-smoothing", "0.1", *flags])


def test_an_unknown_weighting_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        build_translation(tmp_path, ["--criterion", "label_smoothed_skd", "--skd-weighting", "gaussian"])


def test_the_public_codes_schedule_comes_from_the_update_number_across_a_resume(tmp_path, fresh_metrics):
    """alpha 0 for K updates, then + 1/W per update up to 1 (the public code's K and eta, as
    --skd-start-update K --skd-warmup-updates 1/eta): from the trainer's update count, so a resumed
    trainer continues the schedule (the public code keeps alpha in the model and loses it)."""
    from fairseq.trainer import Trainer

    from skd_fairseq.schedule import skd_alpha

    args = TOP1 + [
        "--label-smoothing",
        "0.1",
        "--skd-sigma",
        "0.5",
        "--skd-alpha",
        "1",
        "--skd-start-update",
        "2",
        "--skd-warmup-updates",
        "4",
    ]
    task, model, criterion, cfg = build_translation(tmp_path, args)
    trainer = Trainer(cfg, task, model, criterion)
    sample = translation_sample(task)
    seen = [trainer.train_step([sample])["skd_alpha"] for _ in range(8)]
    assert seen == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1, 1, 1], abs=1e-4)  # updates 0..7
    assert seen == pytest.approx([skd_alpha(u, 1.0, 2, 4) for u in range(8)], abs=1e-4)
    _, _, resumed_criterion, _ = build_translation(tmp_path, args)
    resumed = Trainer(cfg, task, model, resumed_criterion)
    resumed.set_num_updates(4)  # as after loading a checkpoint of update 4
    assert resumed.train_step([sample])["skd_alpha"] == pytest.approx(0.75, abs=1e-4)
