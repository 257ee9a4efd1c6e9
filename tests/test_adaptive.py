"""SKD's pieces of an adaptive softmax against fairseq's own module and brute-force references."""

import pytest
import torch
from conftest import TINY_ADAPTIVE_LM, build_language_model

from skd_fairseq.adaptive import (
    cluster_log_normaliser,
    embedding_matrix,
    embedding_rows,
    entry_log_probs,
    grouped_rows,
    indices_by_row,
    needed_rows,
    running_topk,
)
from skd_fairseq.criterions.fairseq_access import adaptive_parts

ADAPTIVE_LOSS = ["--criterion", "adaptive_loss"]
# Untied; tied weights (the head's first band is the adaptive input's); tied with the
# input projections; and a head with its own projection (input dim != first band's dim).
ADAPTIVE_INPUT = [
    "--adaptive-input",
    "--adaptive-input-cutoff",
    "20,40",
    "--adaptive-input-factor",
    "2",
    "--decoder-output-dim",
    "32",
]
VARIANTS = {
    "untied": TINY_ADAPTIVE_LM,
    "tied": TINY_ADAPTIVE_LM + ADAPTIVE_INPUT + ["--decoder-input-dim", "32", "--tie-adaptive-weights"],
    "tied-proj": TINY_ADAPTIVE_LM
    + ADAPTIVE_INPUT
    + ["--decoder-input-dim", "32", "--tie-adaptive-weights", "--tie-adaptive-proj"],
}


def head_projection_softmax():
    """fairseq's AdaptiveSoftmax tied to an AdaptiveInput whose first band (64 wide) differs
    from the softmax's input (32): its TiedHeadModule projects before the tied embedding.
    (transformer_lm asserts equal sizes, so this is built directly.)"""
    from fairseq.modules import AdaptiveInput, AdaptiveSoftmax

    torch.manual_seed(0)
    inputs = AdaptiveInput(64, 1, 64, 2.0, 32, [20, 40])
    return AdaptiveSoftmax(64, 32, [20, 40], dropout=0.0, factor=2.0, adaptive_inputs=inputs, tie_proj=True)


def adaptive_model(tmp_path, variant):
    if variant == "head-proj":
        task, model, softmax = None, None, head_projection_softmax()
    else:
        torch.manual_seed(0)
        task, model, _, _ = build_language_model(tmp_path, ADAPTIVE_LOSS, arch_args=VARIANTS[variant])
        softmax = model.decoder.adaptive_softmax
    with torch.no_grad():  # tied weights start with zeros in places; make every logit informative
        for p in softmax.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return task, model, softmax.eval()


def module_logits(softmax, h):
    """Brute force: [N, V] where column w is the logit the module computes for w (its head
    logit, or its within-cluster logit), read from the module's own forward pieces."""
    head = softmax.head(h)
    parts = [head[:, : softmax.cutoff[0]]] + [tail(h) for tail in softmax.tail]
    return torch.cat(parts, dim=1)


@pytest.mark.parametrize("variant", list(VARIANTS) + ["head-proj"])
def test_output_embedding_gives_the_module_logits(tmp_path, variant):
    _, _, softmax = adaptive_model(tmp_path, variant)
    parts = adaptive_parts(softmax)
    if variant == "head-proj":
        assert isinstance(softmax.head.word_proj, torch.nn.Sequential)
    h = torch.randn(7, softmax.input_dim)
    with torch.no_grad():
        want = module_logits(softmax, h)
    E = embedding_matrix(parts, block_rows=7)
    assert E.shape == (softmax.vocab_size, softmax.input_dim) and E.dtype == torch.float32
    # Two fp32 products of the same factors in different orders: their rounding scales with the
    # logits' magnitude (the CPU's BLAS kernels decide the order), not with each logit's own size.
    torch.testing.assert_close(h @ E.t(), want, rtol=1e-5, atol=1e-5 * max(1.0, want.abs().max().item()))
    ids = torch.tensor([0, 5, 19, 20, 33, 40, softmax.vocab_size - 1])
    torch.testing.assert_close(embedding_rows(parts, ids), E[ids])
    head_only = torch.tensor([3, 0, 19])  # every tail empty
    torch.testing.assert_close(embedding_rows(parts, head_only), E[head_only])


def test_indices_by_row_equal_nonzero_per_row():
    g = torch.Generator().manual_seed(0)
    member = torch.rand(5, 300, generator=g) < torch.tensor([[0.0], [1.0], [0.01], [0.5], [0.0]])
    member[4, 299] = True
    for row, got in zip(member, indices_by_row(member)):
        want = row.nonzero().squeeze(1)
        if want.numel() == 0:
            assert got is None
        else:
            assert torch.equal(got, want)


def test_needed_rows_are_the_positions_with_an_entry_in_each_cluster():
    cutoff = [10, 20, 50]
    entries = torch.tensor([[1, 2], [15, 3], [0, 49], [11, 21], [9, 9]])
    got = needed_rows(entries, cutoff)
    assert torch.equal(got[0], torch.tensor([1, 3])) and torch.equal(got[1], torch.tensor([2, 3]))
    assert needed_rows(entries.clamp(max=9), cutoff) == [None, None]


def test_grouped_rows_are_the_gold_and_each_sets_rows_in_one_sync(monkeypatch):
    cutoff = [10, 20, 50]
    target = torch.tensor([3, 15, 49, 11, 9])
    teacher = torch.tensor([[1, 2], [15, 3], [0, 49], [11, 21], [9, 9]])
    skd = torch.tensor([[3, 12], [15, 16], [49, 30], [11, 1], [9, 8]])
    calls = []
    monkeypatch.setattr("skd_fairseq.adaptive.indices_by_row", lambda m: calls.append(m) or indices_by_row(m))
    gold, (teacher_rows, skd_rows) = grouped_rows(target, [teacher, skd], cutoff)
    assert len(calls) == 1  # one host sync for all three groupings

    def same(got, want):
        return len(got) == len(want) and all(g is w is None or torch.equal(g, w) for g, w in zip(got, want))

    assert same(gold, [torch.tensor([0, 4]), torch.tensor([1, 3]), torch.tensor([2])])  # head, tail 1, tail 2
    assert same(teacher_rows, needed_rows(teacher, cutoff)) and same(skd_rows, needed_rows(skd, cutoff))
    assert same(grouped_rows(target, [], cutoff)[0], gold) and grouped_rows(target, [], cutoff)[1] == []


@pytest.mark.parametrize("variant", ["untied", "tied-proj", "head-proj"])
def test_entry_log_probs_equal_get_log_prob_values_and_gradients(tmp_path, variant):
    _, _, softmax = adaptive_model(tmp_path, variant)
    parts = adaptive_parts(softmax)
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(9, softmax.input_dim, generator=g)
    entries = torch.randint(0, softmax.vocab_size, (9, 5), generator=g)
    entries[0] = torch.tensor([1, 2, 3, 4, 5])  # a row that needs no tail
    weights = torch.rand(9, 5, generator=g)

    def via_module(h):
        # The full [N, V] log-probabilities, as get_log_prob computes them but differentiable.
        head = torch.log_softmax(softmax.head(h), -1)
        c0 = softmax.cutoff[0]
        full = torch.cat(
            [head[:, :c0]]
            + [torch.log_softmax(tail(h), -1) + head[:, c0 + i, None] for i, tail in enumerate(softmax.tail)],
            dim=1,
        )
        with torch.no_grad():  # the same numbers as fairseq's own (in-place) get_log_prob
            torch.testing.assert_close(full, softmax.get_log_prob(h.unsqueeze(0), None).squeeze(0))
        return full.gather(1, entries)

    def via_entries(h):
        rows = needed_rows(entries, parts.cutoff)
        z = [tail[1](tail[0](h[r])) if r is not None else None for tail, r in zip(softmax.tail, rows)]
        return entry_log_probs(softmax.head(h), z, rows, parts.tail_out, parts.cutoff, entries, block=7)

    results = []
    for fn in (via_module, via_entries):
        softmax.zero_grad()
        h = hidden.clone().requires_grad_()
        values = fn(h)
        (values * weights).sum().backward()
        grads = [h.grad] + [p.grad.clone() for p in softmax.parameters() if p.grad is not None]
        results.append((values.detach(), grads))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    assert len(results[0][1]) == len(results[1][1])
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_cluster_log_normaliser_equals_logsumexp_in_value_and_gradient():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(6, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(23, 4, dtype=torch.float64, generator=g, requires_grad=True)
    for block in (1, 5, 23, 100):
        got = cluster_log_normaliser(z.float(), w.float(), block)
        torch.testing.assert_close(got.double(), torch.logsumexp(z @ w.t(), 1), rtol=1e-5, atol=1e-5)
    upstream = torch.randn(6, dtype=torch.float64, generator=g)
    (cluster_log_normaliser(z, w, 5) * upstream).sum().backward()
    got_z, got_w = z.grad.clone(), w.grad.clone()
    z.grad, w.grad = None, None
    (torch.logsumexp(z @ w.t(), 1) * upstream).sum().backward()
    torch.testing.assert_close(got_z, z.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_w, w.grad, rtol=1e-5, atol=1e-6)


def test_running_topk_equals_the_full_topk(tmp_path):
    _, _, softmax = adaptive_model(tmp_path, "tied")
    parts = adaptive_parts(softmax)
    h = torch.randn(11, softmax.input_dim, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([4, 25, 50, 7, 41, 19, 20, 39, 40, 63, 8])
    exclude = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        full = softmax.get_log_prob(h.unsqueeze(0), None).squeeze(0)
        full[:, exclude] = float("-inf")
        full.scatter_(1, target.unsqueeze(1), float("-inf"))
        want = full.topk(6, dim=1)
        head = torch.log_softmax(softmax.head(h), -1)
        z = [tail[1](tail[0](h)) for tail in softmax.tail]
    got = running_topk(head, z, parts.tail_out, parts.cutoff, 6, exclude, target, block=3)
    torch.testing.assert_close(full.gather(1, got), want.values, rtol=1e-5, atol=1e-5)


# --- the criteria on an adaptive softmax ------------------------------------------------------

SKD0 = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0", "--skd-include-unseen"]
WIKI103_LIKE = (
    TINY_ADAPTIVE_LM
    + ADAPTIVE_INPUT
    + [
        "--decoder-input-dim",
        "32",
        "--tie-adaptive-weights",
        "--tie-adaptive-proj",
        "--adaptive-softmax-dropout",
        "0.2",
    ]
)


def full_log_probs(softmax, hidden):
    """[N, V] log-probabilities of the whole vocabulary (differentiable), for references."""
    h = softmax.dropout_module(hidden.reshape(-1, hidden.size(-1)))
    head = torch.log_softmax(softmax.head(h), -1)
    c0 = softmax.cutoff[0]
    return torch.cat(
        [head[:, :c0]]
        + [torch.log_softmax(tail(h), -1) + head[:, c0 + i, None] for i, tail in enumerate(softmax.tail)],
        dim=1,
    )


def loss_and_grads(model, criterion, sample, seed=0):
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks for both criteria
    loss, _, log = criterion(model, sample)
    loss.sum().backward()
    return loss.detach(), log, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def padding_twin_targets(task, sample):
    """The ids c_i + padding_idx of each tail cluster i, which fairseq's adaptive_loss leaves out
    (it passes ignore_index=padding_idx to each tail's cross-entropy, whose targets are ids within
    the cluster), and whether ``sample`` has one as a target."""
    cutoff = [20, 40]  # TINY_ADAPTIVE_LM's
    twins = [c + task.target_dictionary.pad() for c in cutoff]
    return twins, bool(torch.isin(sample["target"], torch.tensor(twins)).any())


def test_alpha_zero_is_the_full_nll_adaptive_loss_where_it_counts_every_word(tmp_path, fresh_metrics):
    from conftest import lm_sample

    # The tails' dropout masks are drawn otherwise than fairseq's module draws them (one per
    # position for the whole step): compared without that dropout.
    arch = WIKI103_LIKE + ["--adaptive-softmax-dropout", "0"]
    task, model, skd, _ = build_language_model(tmp_path, SKD0 + ["--skd-alpha", "0"], arch_args=arch)
    _, _, adaptive, _ = build_language_model(tmp_path, ADAPTIVE_LOSS, arch_args=arch)
    twins, _ = padding_twin_targets(task, lm_sample(task))
    # A batch without the words adaptive_loss leaves out: the same loss and gradients (other sums).
    sample = lm_sample(task)
    sample["target"][torch.isin(sample["target"], torch.tensor(twins))] = 30
    loss, log, grads = loss_and_grads(model, skd, sample)
    want, want_log, want_grads = loss_and_grads(model, adaptive, sample)
    torch.testing.assert_close(loss.reshape(()), want.reshape(()), rtol=1e-6, atol=1e-4)
    assert log["sample_size"] == want_log["sample_size"]
    assert grads.keys() == want_grads.keys()
    for n in grads:  # fp32 sums in another order: an error of ~1e-6 of the tensor's scale
        scale = max(1.0, want_grads[n].abs().max().item())
        torch.testing.assert_close(grads[n], want_grads[n], rtol=1e-4, atol=1e-5 * scale)
    # A batch with them: adaptive_loss drops their terms, SKD's data term is the full softmax's NLL.
    sample["target"][0, :3] = torch.tensor([twins[0], twins[1], twins[0]])
    loss, _, _ = loss_and_grads(model, skd, sample)
    want, _, _ = loss_and_grads(model, adaptive, sample)
    model.eval()  # the reference without dropout: validation, where SKD's loss is the same NLL
    with torch.no_grad():
        features = model(**sample["net_input"])[0]
        lprobs = full_log_probs(model.decoder.adaptive_softmax, features)
        target = sample["target"].view(-1)
        real = target.ne(task.target_dictionary.pad())
        reference = -lprobs.gather(1, target.unsqueeze(1)).squeeze(1)[real].sum()
        valid = skd(model, sample)[0]
        assert float(valid) == pytest.approx(float(reference), rel=1e-5)
        assert float(adaptive(model, sample)[0]) < float(reference) - 1.0  # three words fewer
        # Validation at any alpha: the same number.
        _, _, skd_half, _ = build_language_model(tmp_path, SKD0 + ["--skd-alpha", "0.5"], arch_args=arch)
        assert torch.equal(skd_half(model, sample)[0], valid)


def test_adaptive_scores_draw_each_dropout_mask_once_per_forward(tmp_path, fresh_metrics):
    from conftest import lm_sample

    task, model, skd, _ = build_language_model(
        tmp_path,
        SKD0 + ["--skd-alpha", "0.5", "--skd-adaptive-candidates", "any"],
        arch_args=WIKI103_LIKE + ["--adaptive-softmax-dropout", "0.5"],
    )
    model.train()
    sample = lm_sample(task)
    scores, target = skd.scores_and_target(model, model(**sample["net_input"]), sample)
    vocab = scores.vocab_size
    entries = torch.stack([target, torch.full_like(target, vocab - 1), torch.full_like(target, 25)], dim=1)
    head_only = skd.scores_and_target(model, model(**sample["net_input"]), sample)[0]
    assert torch.isfinite(head_only.log_probs(torch.zeros_like(entries) + 7)).all()  # no tail asked for first
    first = scores.log_probs(entries)
    # Asked again, alone or among other entries, and ranked by topk: the same numbers, not new masks.
    torch.testing.assert_close(scores.log_probs(entries), first, rtol=0, atol=0)
    torch.testing.assert_close(scores.log_probs(entries[:, 1:2]), first[:, 1:2], rtol=0, atol=0)
    ids = scores.topk(4, torch.zeros(0, dtype=torch.long), target)
    full = scores.log_probs(torch.arange(vocab).expand(target.numel(), vocab)).detach()
    full[torch.arange(target.numel()), target] = float("-inf")  # topk never returns the target
    assert torch.equal(full.topk(4, dim=1).indices, ids)
    # The masks are dropout's: about half of each tail's units are zero, the rest scaled by 2.
    for mask in scores._tail_masks:
        assert set(mask.unique().tolist()) == {0.0, 2.0} and 0.3 < float(mask.eq(0).float().mean()) < 0.7
    model.eval()  # no dropout at evaluation
    scores, _ = skd.scores_and_target(model, model(**sample["net_input"]), sample)
    scores.log_probs(entries)
    assert all(mask is None for mask in scores._tail_masks)


def cluster_ids(ids, cutoff):
    return torch.bucketize(ids, torch.tensor(cutoff[:-1]), right=True)


@pytest.mark.parametrize("candidates", ["cluster", "any"])
@pytest.mark.parametrize("mode", ["neighbours", "predicted", "random"])
def test_skd_on_an_adaptive_softmax_equals_the_full_matrix_reference(
    tmp_path, fresh_metrics, mode, candidates, monkeypatch
):
    from conftest import lm_sample
    from references import brute_force_similarities, reference_loss, reference_soft_targets

    from skd_fairseq.criterions import candidate_state as module

    drawn = []
    original = module.random_candidates
    monkeypatch.setattr(module, "random_candidates", lambda *a, **kw: drawn.append(original(*a, **kw)) or drawn[-1])
    args = SKD0 + [
        "--skd-alpha",
        "0.4",
        "--skd-topk",
        "5",
        "--skd-candidates",
        mode,
        "--skd-gold-mass",
        "0.7",
        "--skd-neighbour-refresh",
        "0",
        "--skd-adaptive-candidates",
        candidates,
    ]
    task, model, criterion, _ = build_language_model(
        tmp_path, args, arch_args=WIKI103_LIKE + ["--adaptive-softmax-dropout", "0"]
    )
    sample = lm_sample(task, seed=3)
    # The words whose tied input row fairseq zeroes have every neighbour at cosine 0: a tie
    # whose order depends on rounding. Not as targets here.
    twins, _ = padding_twin_targets(task, sample)
    sample["target"][torch.isin(sample["target"], torch.tensor(twins))] = 30
    loss, log, grads = loss_and_grads(model, criterion, sample)

    softmax = model.decoder.adaptive_softmax
    model.zero_grad()
    features = model(**sample["net_input"])[0]
    lprobs = full_log_probs(softmax, features)
    target = sample["target"].view(-1)
    pad = task.target_dictionary.pad()
    parts = adaptive_parts(softmax)
    E = embedding_matrix(parts)
    exclude = list(range(4))
    # Where each position may look: its target's cluster, or anywhere.
    same_cluster = cluster_ids(target, parts.cutoff).unsqueeze(1).eq(cluster_ids(torch.arange(len(E)), parts.cutoff))
    allowed = same_cluster if candidates == "cluster" else torch.ones_like(same_cluster)
    allowed[:, exclude] = False
    allowed[torch.arange(target.numel()), target] = False
    if mode == "neighbours":
        sims = brute_force_similarities(E, "cosine")[target].masked_fill(~allowed, float("-inf"))
        candidates_ = sims.topk(5, dim=1).indices
    elif mode == "predicted":
        candidates_ = lprobs.detach().masked_fill(~allowed, float("-inf")).topk(5, dim=1).indices
    else:
        candidates_ = drawn[-1]
    real = target.ne(pad)
    # Cluster candidates never leave the gold word's cluster.
    assert bool(allowed.gather(1, candidates_)[real].all())
    # q at the solved tau of each position (checked against the reference's own softmax).
    from skd_fairseq.losses import skd_soft_targets

    q, tau = skd_soft_targets(E, target, candidates_, "cosine", gold_mass=0.7, return_temperature=True)
    for i in range(0, target.numel(), 7):
        if real[i]:
            want_q = reference_soft_targets(E, target[i : i + 1], candidates_[i : i + 1], "cosine", float(tau[i]))
            torch.testing.assert_close(q[i : i + 1].double(), want_q, rtol=1e-4, atol=1e-5)
    want = reference_loss(lprobs.detach(), target, candidates_, q, 0.4, 0.0, pad)
    assert float(loss) == pytest.approx(want[0], rel=1e-5)
    assert float(log["skd_loss"]) == pytest.approx(want[2], rel=1e-5)
    assert float(log["skd_gold_q"]) == pytest.approx(float(q[:, 0][real].sum()), rel=1e-4)
    # Gradients: the same loss written on the full matrix.
    picked = lprobs.gather(1, torch.cat([target.unsqueeze(1), candidates_], 1))
    ref = (0.6 * -picked[:, 0] + 0.4 * -(q * picked).sum(1)).masked_fill(~real, 0).sum()
    ref.backward()
    for n, p in model.named_parameters():
        if n in grads:
            # fp32 sums in another order: an element's error follows the tensor's scale, not its own
            # size (measured: at most 8e-7 of max(1, |grad|) over 40 initialisations and each mode).
            scale = max(1.0, float(grads[n].abs().max()))
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--label-smoothing", "0.1"], r"--label-smoothing 0.1 on an adaptive softmax.*Use --label-smoothing 0"),
        (["--label-smoothing", "0", "--report-accuracy"], r"--report-accuracy are not supported with an adaptive"),
    ],
)
def test_adaptive_softmax_refuses_what_it_cannot_compute(tmp_path, fresh_metrics, flags, message):
    from conftest import lm_sample

    task, model, criterion, _ = build_language_model(
        tmp_path, ["--criterion", "label_smoothed_skd", *flags], arch_args=WIKI103_LIKE
    )
    model.train()
    with pytest.raises(ValueError, match=message):
        criterion(model, lm_sample(task))


@pytest.mark.parametrize("similarity", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("variant", list(VARIANTS) + ["head-proj"])
def test_cluster_space_search_equals_the_full_space_search_within_each_cluster(tmp_path, variant, similarity):
    """Each tail cluster searched from W_i and G_i = P_i P_i^T (d_i wide) finds the neighbours
    that the full-space search over e_w = P_i^T W_i[w] (D wide) finds among the cluster's words."""
    from references import brute_force_similarities

    from skd_fairseq.adaptive import cluster_spaces
    from skd_fairseq.neighbours import neighbour_table

    _, _, softmax = adaptive_model(tmp_path, variant)
    parts = adaptive_parts(softmax)
    E = embedding_matrix(parts).double()
    exclude = torch.tensor([0, 1, 2, 3, 45])
    got = neighbour_table(cluster_spaces(parts), 4, similarity, exclude)
    cluster = torch.bucketize(torch.arange(len(E)), torch.tensor(parts.cutoff[:-1]), right=True)
    sims = brute_force_similarities(E, similarity)
    sims = sims.masked_fill(~cluster.unsqueeze(1).eq(cluster.unsqueeze(0)), float("-inf"))
    sims[:, exclude] = float("-inf")
    sims.fill_diagonal_(float("-inf"))
    want = sims.topk(5, dim=1)
    assert bool(cluster.unsqueeze(1).eq(cluster[got]).all())  # never outside the word's cluster
    torch.testing.assert_close(sims.gather(1, got), want.values[:, :4], rtol=1e-5, atol=1e-5)
    # The same ids wherever the ranking has no near-tie (zero rows tie with everything).
    clear = (want.values[:, :-1] - want.values[:, 1:]).abs().min(1).values > 1e-4
    assert clear.sum() > len(E) // 2 and torch.equal(got[clear], want.indices[clear, :4])


def test_k_larger_than_a_cluster_allows_is_refused_naming_the_cluster(tmp_path, fresh_metrics):
    from conftest import lm_sample

    task, model, criterion, _ = build_language_model(
        tmp_path, SKD0 + ["--skd-topk", "19"], arch_args=WIKI103_LIKE
    )  # the head has 20 words, 4 special
    model.train()
    with pytest.raises(
        ValueError,
        match=r"--skd-topk 19 with --skd-adaptive-candidates cluster: the head cluster "
        r"\(ids 0 to 19\) has 20 words, 4 of them excluded",
    ):
        criterion(model, lm_sample(task))
    _, _, any_cluster, _ = build_language_model(
        tmp_path, SKD0 + ["--skd-topk", "19", "--skd-adaptive-candidates", "any"], arch_args=WIKI103_LIKE
    )
    assert torch.isfinite(any_cluster(model, lm_sample(task))[0])


def test_adaptive_candidates_are_refused_on_a_full_softmax(tmp_path, fresh_metrics):
    from conftest import build_translation, translation_sample

    task, model, criterion, _ = build_translation(
        tmp_path, ["--criterion", "label_smoothed_skd", "--skd-adaptive-candidates", "cluster"]
    )
    model.train()
    with pytest.raises(ValueError, match=r"--skd-adaptive-candidates cluster: this model has a full softmax"):
        criterion(model, translation_sample(task))
