"""SKD on a CUDA device: exact search, half precision, no host syncs in a steady step, refresh memory.

Marked ``cuda``: they skip cleanly without a GPU (every CI run), and ``benchmarks/gpu-check.sh``
runs them on a machine that has one (``pytest -m cuda``).
"""

import pytest
import torch
from conftest import SMALL_TRANSFORMER, build_translation, translation_sample
from references import brute_force_neighbours, brute_force_similarities

from skd_fairseq.neighbours import DEFAULT_BLOCK_ELEMENTS, embedding_topk

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

# Candidates among every token, unless a test says otherwise.
SKD = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0.1", "--skd-alpha", "0.5", "--skd-include-unseen"]


@pytest.mark.parametrize("similarity", ["cosine", "l2", "dot"])
def test_embedding_topk_on_cuda_equals_the_float64_search(similarity):
    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(6000, 48, generator=g)
    ids = torch.arange(0, 6000, 7)
    got = embedding_topk(embeddings.cuda(), ids.cuda(), 8, similarity, exclude=[0, 1, 2, 3], chunk_size=300)
    assert got.device.type == "cuda"
    sims = brute_force_similarities(embeddings, similarity)[ids]
    want = brute_force_neighbours(embeddings, ids, 8, similarity, exclude=[0, 1, 2, 3])
    torch.testing.assert_close(sims.gather(1, got.cpu()), want.values, rtol=1e-5, atol=1e-5)


# Loss tolerance of a half-precision step against fp32 (relative), and of the logged gold mass:
# the similarities and q are fp32 in every case, so the gold mass stays close.
HALF_TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 1e-2}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("mode", ["neighbours", "predicted", "random"])
def test_half_precision_steps_match_fp32(tmp_path, fresh_metrics, dtype, mode, monkeypatch):
    from skd_fairseq.criterions import label_smoothed_skd as module

    targets = []
    original = module.soft_targets_from_similarities
    monkeypatch.setattr(
        module,
        "soft_targets_from_similarities",
        lambda sims, *a: targets.append((sims.dtype, original(sims, *a))) or targets[-1][1],
    )
    torch.manual_seed(0)
    task, model, criterion, _ = build_translation(
        tmp_path, SKD + ["--skd-candidates", mode, "--skd-gold-mass", "0.8"], n_words=400, arch_args=SMALL_TRANSFORMER
    )
    model = model.cuda()
    criterion = criterion.cuda()
    sample = {
        k: ({n: t.cuda() for n, t in v.items()} if isinstance(v, dict) else v.cuda() if torch.is_tensor(v) else v)
        for k, v in translation_sample(task, batch=16, src_len=12, tgt_len=14).items()
    }
    model.train()
    want, _, want_log = criterion(model, sample)
    half = model.to(dtype)
    criterion.candidates._draw = (None, 0)  # the same random candidates as the fp32 step (not a second micro-batch's)
    loss, _, log = criterion(half, sample)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in half.parameters() if p.grad is not None)
    assert float(loss) == pytest.approx(float(want), rel=HALF_TOLERANCE[dtype])
    assert float(log["skd_gold_q"]) == pytest.approx(float(want_log["skd_gold_q"]), rel=1e-3)
    assert all(sims_dtype == torch.float32 and q.dtype == torch.float32 for sims_dtype, (q, _) in targets)


def to_cuda(sample):
    return {
        k: ({n: t.cuda() for n, t in v.items()} if isinstance(v, dict) else v.cuda() if torch.is_tensor(v) else v)
        for k, v in sample.items()
    }


@pytest.mark.parametrize("unseen", [[], ["--skd-include-unseen"]], ids=["exclude-unseen", "include-unseen"])
@pytest.mark.parametrize("mode", ["neighbours", "predicted", "random"])
def test_a_steady_state_step_makes_no_host_device_sync(tmp_path, fresh_metrics, mode, unseen):
    """After the first step (the table built, every pool holding k + 1 seen targets), the
    criterion's part of a step (scores, candidates, q, loss, logs) and its backward never wait
    for the device, with or without the exclusion of unseen targets (tests/test_host_syncs.py
    proves the same on the CPU for every path)."""
    base = [f for f in SKD if f != "--skd-include-unseen"]
    task, model, criterion, _ = build_translation(
        tmp_path,
        base + unseen + ["--skd-candidates", mode, "--skd-gold-mass", "0.8", "--skd-neighbour-refresh", "50"],
        n_words=400,
        arch_args=SMALL_TRANSFORMER,
    )
    model, criterion = model.cuda(), criterion.cuda()
    sample = to_cuda(translation_sample(task, batch=16, src_len=12, tgt_len=14))
    model.train()
    criterion(model, sample)  # update 0: builds the table, counts the seen targets (syncs allowed there)
    criterion.set_num_updates(1)
    net_output = model(**sample["net_input"])  # fairseq's own padding checks sync (outside the count)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        scores, target = criterion.scores_and_target(model, net_output, sample)
        loss, _, log = criterion.compute_loss_terms(model, sample, net_output, scores, target, True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    loss.backward()
    assert torch.isfinite(loss) and float(log["skd_ntokens"]) > 0


def syncs_of_the_loss(criterion, model, sample):
    """(sync warnings, loss, log) of the criterion's part of a step, under torch's sync debug mode
    (the model's forward runs before: fairseq's own padding checks sync, outside the count)."""
    import warnings

    net_output = model(**sample["net_input"])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores, target = criterion.scores_and_target(model, net_output, sample)
            loss, _, log = criterion.compute_loss_terms(model, sample, net_output, scores, target, True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return [str(w.message) for w in caught if "synchroniz" in str(w.message)], loss, log


@pytest.mark.parametrize("adaptive", ["cluster", "any"])
@pytest.mark.parametrize("mode", ["neighbours", "predicted", "random"])
def test_an_adaptive_softmax_step_syncs_once_to_group_positions_by_cluster(tmp_path, fresh_metrics, mode, adaptive):
    """On an adaptive softmax the one sync of a steady step is the grouping of positions by
    cluster that the tail projections need (fairseq's adaptive_loss makes one per cluster)."""

    from conftest import build_language_model, lm_sample

    flags = ["--skd-candidates", mode, "--skd-adaptive-candidates", adaptive]
    task, model, criterion, _ = build_language_model(
        tmp_path, ["--criterion", "label_smoothed_skd", "--label-smoothing", "0", *flags]
    )
    model, criterion = model.cuda(), criterion.cuda()
    model.train()
    for seed in range(6):  # every cluster holds k + 1 seen targets, the table is built
        criterion.set_num_updates(seed)
        criterion(model, to_cuda(lm_sample(task, seed=seed)))
    sample = to_cuda(lm_sample(task, seed=6))
    criterion.set_num_updates(6)
    syncs, loss, _ = syncs_of_the_loss(criterion, model, sample)
    assert len(syncs) == 1, syncs
    loss.backward()


def test_cached_word_kd_on_an_adaptive_softmax_syncs_once_to_group_positions_by_cluster(tmp_path, fresh_metrics):
    """The cached teacher's top K on an adaptive-softmax student: its positions are grouped with the
    gold words' in the step's one sync (tests/test_host_syncs.py counts the same on the CPU, also
    for an online teacher, whose own fairseq decoder syncs besides)."""

    from conftest import TINY_ADAPTIVE_LM, build_for_training
    from test_teacher_cache import LM_TASK, build_cache, lm_data, save_lm_teacher, train_batch

    data = lm_data(tmp_path / "lm")
    teacher = save_lm_teacher(tmp_path / "teacher", data)
    cache = build_cache(data, teacher, tmp_path / "cache", *LM_TASK[:2], "--tokens-per-sample", "16", "--topk", "4")
    flags = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0", "--kd-weight", "0.5"]
    task, model, criterion, _ = build_for_training(
        data, *LM_TASK, *TINY_ADAPTIVE_LM, *flags, "--kd-teacher-cache", cache
    )
    model, criterion = model.cuda(), criterion.cuda()
    model.train()
    sample = to_cuda(train_batch(task))
    criterion(model, sample)
    criterion.set_num_updates(1)
    syncs, loss, log = syncs_of_the_loss(criterion, model, sample)
    assert len(syncs) == 1, syncs
    assert "kd_kl" in log
    loss.backward()


def test_a_refresh_step_needs_at_most_the_fp32_embedding_and_one_block_more():
    """benchmarks/README.md, cost model: a refresh's extra memory is the transposed fp32 copy of E
    that the search multiplies with, one [chunk, V] block of similarities (DEFAULT_BLOCK_ELEMENTS
    fp32 values, 128 MiB), the [V, k] table, the norms, and per-chunk temporaries (the chunk's
    rows and their factor, the group maxima and the candidate columns of the two-pass top-k, the
    rows being converted while the copy is built)."""
    from skd_fairseq.neighbours import _TOPK_GROUP
    from skd_fairseq.similarity import _ROWS_PER_BLOCK

    vocab, dim, k = 32000, 512, 8
    weight = torch.randn(vocab, dim, device="cuda", dtype=torch.float16)
    ids = torch.arange(vocab, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    table = embedding_topk(weight, ids, k, "cosine", exclude=torch.arange(4, device="cuda"))
    extra = torch.cuda.max_memory_allocated() - before
    chunk = DEFAULT_BLOCK_ELEMENTS // vocab
    main = vocab * dim * 4 + DEFAULT_BLOCK_ELEMENTS * 4 + table.numel() * 8 + vocab * 4 * 4  # + norms, ids
    temporaries = (
        chunk * (3 * dim * 4 + vocab // _TOPK_GROUP * 4 + k * _TOPK_GROUP * (8 + 4 + 8)) + 2 * _ROWS_PER_BLOCK * dim * 4
    )
    bound = main + 1.25 * temporaries
    assert extra <= bound, f"{extra / 2**20:.0f} MiB over a bound of {bound / 2**20:.0f} MiB"
