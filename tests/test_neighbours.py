"""embedding_topk and predicted_topk against brute-force references; random_candidates' distribution."""

import pytest
import torch
from references import brute_force_neighbours, brute_force_similarities

from skd_fairseq.neighbours import (
    MASK_EXCLUDED_ABOVE,
    admissible_ids,
    embedding_topk,
    neighbour_table,
    predicted_topk,
    random_candidates,
)
from skd_fairseq.similarity import SIMILARITIES, EmbeddingSimilarity


def assert_matches_brute_force(embeddings, ids, got, k, similarity, exclude=()):
    ids = torch.as_tensor(ids)
    assert got.shape == (len(ids), k) and got.dtype == torch.long
    # Never the query itself, never an excluded id, no repeats.
    assert not (got == ids.unsqueeze(1)).any()
    assert not torch.isin(got, torch.tensor(list(exclude), dtype=torch.long)).any()
    assert all(len(set(row.tolist())) == k for row in got)
    # Same similarity values as the exact top-k, in the same (descending) order:
    # equal up to ties and fp32 rounding.
    sims = brute_force_similarities(embeddings, similarity)[ids]
    got_values = sims.gather(1, got)
    want_values = brute_force_neighbours(embeddings, ids, k, similarity, exclude).values
    scale = want_values.abs().max().clamp_min(1.0)
    torch.testing.assert_close(got_values / scale, want_values / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("chunk_size", [None, 1, 7, 64, 1000])
def test_embedding_topk_equals_brute_force(similarity, chunk_size):
    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(300, 16, generator=g)
    ids = torch.randperm(300, generator=g)[:70]
    exclude = [0, 1, 2, 3, 299]
    got = embedding_topk(embeddings, ids, 10, similarity, exclude=exclude, chunk_size=chunk_size)
    assert_matches_brute_force(embeddings, ids, got, 10, similarity, exclude)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_embedding_topk_exact_ids_on_well_separated_data(similarity):
    # Distinct, well-separated similarities: the ids themselves must match the reference.
    g = torch.Generator().manual_seed(1)
    embeddings = torch.randn(50, 64, generator=g) * torch.linspace(0.5, 3.0, 50).unsqueeze(1)
    ids = torch.arange(50)
    got = embedding_topk(embeddings, ids, 5, similarity, chunk_size=8)
    sims = brute_force_similarities(embeddings, similarity)
    sims.fill_diagonal_(float("-inf"))
    want = sims.topk(5, dim=1).indices
    gaps = sims.topk(6, dim=1).values.diff(dim=1).abs()
    clear = (gaps > 1e-4).all(dim=1)
    assert clear.sum() > 25  # the check below must cover most rows
    assert torch.equal(got[clear], want[clear])


def test_embedding_topk_half_precision_uses_fp32_similarities():
    g = torch.Generator().manual_seed(2)
    embeddings = torch.randn(200, 32, generator=g)
    ids = torch.arange(0, 200, 3)
    got = embedding_topk(embeddings.to(torch.bfloat16), ids, 6, "l2")
    # Reference on the same bf16-rounded values, in float64.
    assert_matches_brute_force(embeddings.to(torch.bfloat16).float(), ids, got, 6, "l2")


def test_embedding_topk_accepts_lists_and_rejects_bad_arguments():
    embeddings = torch.randn(20, 4)
    assert embedding_topk(embeddings, [5, 6], 3).shape == (2, 3)
    with pytest.raises(ValueError, match=r"k=0 is out of range"):
        embedding_topk(embeddings, [5], 0)
    # 20 rows - 4 excluded - the query itself = 15 possible neighbours.
    assert embedding_topk(embeddings, [5], 15, exclude=[0, 1, 2, 3]).shape == (1, 15)
    with pytest.raises(ValueError, match=r"\[1, 15\]"):
        embedding_topk(embeddings, [5], 16, exclude=[0, 1, 2, 3, 3])
    with pytest.raises(ValueError, match="unknown similarity 'euclid'"):
        embedding_topk(embeddings, [5], 3, similarity="euclid")
    with pytest.raises(ValueError, match="chunk_size"):
        embedding_topk(embeddings, [5], 3, chunk_size=0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        embedding_topk(embeddings, [5], 3, exclude=[20])


def test_embedding_topk_never_materialises_the_full_matrix(monkeypatch):
    from skd_fairseq import similarity as sim_module

    seen = []
    original = sim_module.EmbeddingSimilarity.against_all

    def spy(self, query_ids, out=None):
        seen.append(query_ids.numel())
        assert out is not None and out.shape == (query_ids.numel(), 100)  # one buffer, reused
        return original(self, query_ids, out=out)

    monkeypatch.setattr(sim_module.EmbeddingSimilarity, "against_all", spy)
    embedding_topk(torch.randn(100, 8), torch.arange(100), 4, chunk_size=16)
    assert max(seen) == 16 and sum(seen) == 100


def brute_force_predicted(lprobs, target, k, exclude):
    rows = []
    for scores, t in zip(lprobs.tolist(), target.tolist()):
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        rows.append([i for i in order if i != t and i not in exclude][:k])
    return torch.tensor(rows)


def test_predicted_topk_equals_brute_force():
    g = torch.Generator().manual_seed(3)
    lprobs = torch.log_softmax(torch.randn(40, 30, generator=g), dim=-1)
    target = torch.randint(0, 30, (40,), generator=g)
    # Make the gold and excluded tokens the most probable in some rows, so skipping matters.
    lprobs[:10, 1] = 5.0
    lprobs[10:20].scatter_(1, target[10:20].unsqueeze(1), 6.0)
    exclude = [0, 1, 2, 3]
    got = predicted_topk(lprobs, target, 5, exclude=exclude)
    assert torch.equal(got, brute_force_predicted(lprobs, target, 5, exclude))


def test_predicted_topk_with_tensor_exclude_and_no_exclude():
    lprobs = torch.log_softmax(torch.randn(8, 12), dim=-1)
    target = torch.randint(0, 12, (8,))
    exclude = torch.tensor([0, 2])
    assert torch.equal(
        predicted_topk(lprobs, target, 4, exclude=exclude),
        brute_force_predicted(lprobs, target, 4, [0, 2]),
    )
    assert torch.equal(predicted_topk(lprobs, target, 11), brute_force_predicted(lprobs, target, 11, []))
    with pytest.raises(ValueError, match="out of range"):
        predicted_topk(lprobs, target, 12)


@pytest.mark.parametrize("chunk_size", [None, 7])
def test_predicted_topk_with_many_excluded_ids_masks_them(chunk_size):
    # More than MASK_EXCLUDED_ABOVE excluded ids (as --skd-exclude-unseen gives): the masking path.
    g = torch.Generator().manual_seed(5)
    lprobs = torch.log_softmax(torch.randn(30, 200, generator=g), dim=-1)
    target = torch.randint(0, 200, (30,), generator=g)
    exclude = torch.randperm(200, generator=g)[: MASK_EXCLUDED_ABOVE + 6]
    lprobs[:10, exclude[0]] = 5.0  # an excluded id ranked first
    lprobs[10:20].scatter_(1, target[10:20].unsqueeze(1), 6.0)  # the gold id ranked first
    got = predicted_topk(lprobs, target, 8, exclude=exclude, chunk_size=chunk_size)
    assert torch.equal(got, brute_force_predicted(lprobs, target, 8, set(exclude.tolist())))
    assert predicted_topk(lprobs[:0], target[:0], 8, exclude=exclude).shape == (0, 8)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_similarity_formulas_on_hand_made_rows(similarity):
    rows = torch.tensor([[3.0, 4.0], [4.0, 3.0], [0.0, 0.0], [-3.0, -4.0]])
    want = {
        "cosine": [[1.0, 24 / 25, 0.0, -1.0]],
        "dot": [[25.0, 24.0, 0.0, -25.0]],
        "l2": [[0.0, -2.0, -25.0, -100.0]],
    }[similarity]
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        sim = EmbeddingSimilarity(rows.to(dtype), similarity)
        all_rows = sim.against_all(torch.tensor([0]))
        pairs = sim.pairs(torch.tensor([0, 0]), torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]]))
        assert all_rows.dtype == pairs.dtype == torch.float32
        torch.testing.assert_close(all_rows, torch.tensor(want))
        torch.testing.assert_close(pairs, torch.tensor([want[0], want[0][::-1]]))


def test_similarities_do_not_overflow_for_large_half_precision_rows():
    rows = torch.full((3, 64), 300.0, dtype=torch.float16)  # |row|^2 = 5.8e6 > fp16 max
    for similarity in SIMILARITIES:
        sim = EmbeddingSimilarity(rows, similarity)
        assert torch.isfinite(sim.against_all(torch.arange(3))).all()
        assert torch.isfinite(sim.pairs(torch.arange(3), torch.arange(3).repeat(3, 1))).all()


EXCLUDED = [0, 1, 2, 3, 17, 18, 19]  # specials and two filler ids


def test_admissible_ids_are_the_sorted_vocabulary_without_the_excluded():
    assert admissible_ids(10, [0, 1, 2, 3, 7]).tolist() == [4, 5, 6, 8, 9]
    assert admissible_ids(4, None).tolist() == [0, 1, 2, 3]


def test_random_candidates_are_never_gold_special_or_filler_and_never_repeat():
    admissible = admissible_ids(20, EXCLUDED)
    g = torch.Generator().manual_seed(0)
    # Gold ids that are admissible and gold ids that are not (eos is a frequent target).
    target = torch.tensor([4, 16, 2, 9, 1] * 400)
    got = random_candidates(target, 12, admissible, g)  # 13 admissible ids: 12 is the most when gold is one
    assert got.shape == (2000, 12) and got.dtype == torch.long
    assert not got.eq(target.unsqueeze(1)).any()
    assert not torch.isin(got, torch.tensor(EXCLUDED)).any()
    assert all(len(set(row.tolist())) == 12 for row in got)
    with pytest.raises(ValueError, match=r"k=13 is out of range: .*\[1, 12\] for 13 admissible ids"):
        random_candidates(target, 13, admissible, g)


def test_random_candidates_are_uniform_over_ids_and_over_subsets():
    admissible = admissible_ids(12, [0, 1, 2, 3, 7])  # 4 5 6 8 9 10 11
    n = 42000
    for gold, pool in ((5, [4, 6, 8, 9, 10, 11]), (2, [4, 5, 6, 8, 9, 10, 11])):
        got = random_candidates(torch.full((n,), gold), 2, admissible, torch.Generator().manual_seed(gold))
        counts = torch.bincount(got.flatten(), minlength=12)
        assert counts[[i for i in range(12) if i not in pool]].sum() == 0
        expected = 2 * n / len(pool)
        assert ((counts[pool] - expected).abs() < 5 * expected**0.5).all(), counts  # within 5 sigma
        # Every unordered pair equally likely (Floyd's sampling is uniform over k-subsets).
        pairs = torch.bincount(got.min(1).values * 12 + got.max(1).values, minlength=144)
        pair_counts = pairs[pairs > 0]
        n_pairs = len(pool) * (len(pool) - 1) // 2
        assert len(pair_counts) == n_pairs
        assert ((pair_counts - n / n_pairs).abs() < 5 * (n / n_pairs) ** 0.5).all(), pair_counts


def test_random_candidates_are_reproducible_under_a_seed_and_change_with_it():
    admissible = admissible_ids(8000, EXCLUDED)
    target = torch.randint(4, 8000, (500,), generator=torch.Generator().manual_seed(1))
    draw = lambda seed: random_candidates(target, 8, admissible, torch.Generator().manual_seed(seed))
    assert torch.equal(draw(3), draw(3))
    assert (draw(3) != draw(4)).float().mean() > 0.99


def _table_on_rank(rank, world, init, spaces, k, exclude, out):
    torch.distributed.init_process_group("gloo", init_method=init, world_size=world, rank=rank)
    try:
        table = neighbour_table(spaces, k, "cosine", exclude, world=world, rank=rank)
        torch.save(table, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_build_the_same_table_as_one_process(tmp_path):
    import torch.multiprocessing as mp

    from skd_fairseq.neighbours import Space

    g = torch.Generator().manual_seed(0)
    w0, w1 = torch.randn(37, 16, generator=g), torch.randn(53, 6, generator=g)
    p1 = torch.randn(6, 16, generator=g)
    spaces = [Space(w0, 0, None, "head"), Space(w1, 37, p1 @ p1.t(), "tail")]
    exclude = torch.tensor([0, 1, 2, 40])
    want = neighbour_table(spaces, 5, "cosine", exclude)
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.start_processes(
        _table_on_rank, args=(2, init, spaces, 5, exclude, str(tmp_path / "table")), nprocs=2, start_method="spawn"
    )
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"table.{rank}"), want)


@pytest.mark.parametrize("width", [1000, 1024, 64 * 4 * 5 + 17])
def test_grouped_topk_returns_the_values_of_a_full_topk(width):
    """The two-pass top-k: the same k values as torch.topk per row, with excluded (-inf) columns,
    ties, columns past the last whole group, and rows with fewer finite values than groups."""
    from skd_fairseq.neighbours import _grouped_topk

    g = torch.Generator().manual_seed(width)
    scores = torch.randn(40, width, generator=g)
    scores[:5] = scores[:5].round()  # many ties
    scores[5, :] = float("-inf")
    scores[5, [3, width - 1, width // 2, 7, 8]] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])  # 5 finite values
    scores[6, width - 5 :] = 100.0  # the best values past the last whole group
    scores[7, ::70] = float("-inf")
    want = scores.topk(5, dim=1).values
    for group in (16, 64):  # 16: grouped at every width here; 64: at the widest only
        got = _grouped_topk(scores.clone(), 5, group)
        torch.testing.assert_close(scores.gather(1, got).sort(1, descending=True).values, want)
        assert all(len(set(row)) == 5 for row in got.tolist())  # distinct columns
