"""The teacher cache: skd-fairseq-cache-teacher and --kd-teacher-cache, in process on tiny binarised data.

Cached and online word-KD (with --kd-teacher-topk K), SKD inside word-KD and TIE-KD's first pass
must give the same loss and gradients; every cache that does not fit the training data is refused
before a step. fairseq computes a model's log-probabilities in fp32 whatever its dtype
(``utils.log_softmax``), and the two paths round differently from there (the online one renormalises
exp(log p / T) over the top K, the cached one takes softmax(log p * T_c / T) over them): they agree
to 3e-7 relative here, so the end-to-end comparisons use rtol 1e-5. The float64 brute-force
references are the pure functions' tests at the top.
"""

import json
import os

import pytest
import torch
from conftest import (
    TINY_ADAPTIVE_LM,
    TINY_TRANSFORMER,
    USER_DIR,
    build_for_training,
    preset_arguments,
    save_checkpoint,
    save_teacher,
    write_dictionary,
)
from fairseq.data import indexed_dataset

from skd_fairseq import cache_teacher
from skd_fairseq.criterions.teacher_cache import MANIFEST, TeacherCache
from skd_fairseq.distillation import (
    cached_teacher_distribution,
    teacher_distribution,
    teacher_topk_log_probs,
)

N_WORDS = 60
TRANSLATION = ["--task", "translation", "-s", "de", "-t", "en"]
WORD_KD = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0.1"]
TIE_KD = ["--criterion", "label_smoothed_tie_kd", "--label-smoothing", "0.1"]
TINY_LM = [a for a in TINY_ADAPTIVE_LM[: TINY_ADAPTIVE_LM.index("--adaptive-softmax-cutoff")]]
LM_TASK = ["--task", "language_modeling", "--ddp-backend", "legacy_ddp"]


# -- the pure functions ------------------------------------------------------------------------


def random_lprobs(n, v, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, v, generator=g, dtype=torch.float64) * 3, dim=-1)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("topk", [0, 3])
def test_cached_distribution_equals_the_online_top_k_of_one_teacher(temperature, topk):
    teacher = random_lprobs(20, 30, seed=1)
    stored, ids = teacher_topk_log_probs([teacher], 1.0, 5)
    q, q_ids = cached_teacher_distribution(stored, ids, 1.0, temperature, topk)
    want, want_ids = teacher_distribution([teacher], temperature, topk or 5)
    assert torch.equal(q_ids, want_ids)
    assert torch.allclose(q.double(), want.double(), rtol=1e-6, atol=0)


def test_a_cache_stored_at_one_temperature_serves_another_for_one_teacher():
    teacher = random_lprobs(10, 25, seed=2)
    stored, ids = teacher_topk_log_probs([teacher], 3.0, 6)
    q, _ = cached_teacher_distribution(stored.double(), ids, 3.0, 0.7, 4)
    want, _ = teacher_distribution([teacher.double()], 0.7, 4)
    assert torch.allclose(q.double(), want.double(), rtol=1e-6)


def test_cached_top_k_log_probs_are_the_ensemble_average_brute_force():
    a, b = random_lprobs(7, 12, seed=3), random_lprobs(7, 12, seed=4)
    stored, ids = teacher_topk_log_probs([a, b], 2.0, 4)
    for n in range(7):  # float64 reference, one position at a time
        mean = (torch.softmax(a[n] / 2.0, -1) + torch.softmax(b[n] / 2.0, -1)) / 2
        top = sorted(range(12), key=lambda w: -float(mean[w]))[:4]
        assert ids[n].tolist() == top
        assert torch.allclose(stored[n].double(), mean[top].log(), rtol=1e-6)
    q, _ = cached_teacher_distribution(stored, ids, 2.0, 2.0)
    want, _ = teacher_distribution([a, b], 2.0, 4)
    assert torch.allclose(q, want, rtol=1e-6)


def test_cached_distribution_refuses_more_tokens_than_stored():
    stored, ids = teacher_topk_log_probs([random_lprobs(3, 9, seed=0)], 1.0, 4)
    with pytest.raises(ValueError, match=r"topk must be in \[0, 4\]"):
        cached_teacher_distribution(stored, ids, 1.0, 1.0, 5)


# -- tiny binarised data and teachers ------------------------------------------------------------


def write_split(prefix, n_words, lengths, seed):
    """A binarised split (fairseq's mmap format) of random words, each sentence ending in eos."""
    g = torch.Generator().manual_seed(seed)
    builder = indexed_dataset.make_builder(f"{prefix}.bin", "mmap", vocab_size=n_words + 8)
    for length in lengths:
        tokens = torch.randint(4, 4 + n_words, (length,), generator=g)
        tokens[-1] = 2  # eos
        builder.add_item(tokens)
    builder.finalize(f"{prefix}.idx")


def translation_data(directory, lengths=(5, 9, 3, 7, 6, 8, 4, 10, 5, 6, 2, 7), seed=0, n_words=N_WORDS):
    directory.mkdir(parents=True, exist_ok=True)
    for lang in ("de", "en"):
        write_dictionary(directory / f"dict.{lang}.txt", n_words)
    for split, offset in (("train", 0), ("valid", 100)):
        src = [max(2, n - 1) for n in lengths]
        write_split(directory / f"{split}.de-en.de", n_words, src, seed + offset)
        write_split(directory / f"{split}.de-en.en", n_words, lengths, seed + offset + 1)
    return str(directory)


def lm_data(directory, lengths=(12, 7, 20, 9, 15, 11, 6, 14), seed=0):
    directory.mkdir(parents=True, exist_ok=True)
    write_dictionary(directory / "dict.txt", N_WORDS)
    write_split(directory / "train", N_WORDS, lengths, seed)
    return str(directory)


def build_cache(data, teacher, out, *args):
    cache_teacher.main([data, "--user-dir", USER_DIR, "--cpu", "--path", teacher, "--out", str(out), *args])
    return str(out)


def save_lm_teacher(directory, data, seed=1):
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    built = build_for_training(data, *LM_TASK, *TINY_LM, "--criterion", "cross_entropy")
    return save_checkpoint(directory / "checkpoint.pt", *built)


@pytest.fixture
def translation_setup(tmp_path):
    data = translation_data(tmp_path / "data")
    teacher, _ = save_teacher(tmp_path / "teacher", seed=1)
    return data, teacher


def train_batch(task):
    """The whole training split as one batch, collated by the task's (cached) dataset."""
    task.load_dataset("train", combine=True)  # as fairseq-train loads it (shards included)
    dataset = task.dataset("train")
    return dataset.collater([dataset[i] for i in range(len(dataset))])


def loss_and_grads(criterion, model, sample):
    model.zero_grad()
    loss, _, log = criterion(model, sample)
    loss.backward()
    return loss.detach(), log, [p.grad.clone() for p in model.parameters()]


def assert_same_loss_and_grads(a, b, rtol):
    assert float(a[0]) == pytest.approx(float(b[0]), rel=rtol)
    for key in ("kd_kl", "tie_rank"):
        if key in a[1]:
            assert float(a[1][key]) == pytest.approx(float(b[1][key]), rel=rtol, abs=1e-12)
    # Relative to the gradient's scale: some parameters' true gradient is 0 (an attention key's
    # bias), where both paths leave rounding noise.
    scale = max(float(g.abs().max()) for g in b[2])
    for ga, gb in zip(a[2], b[2]):
        assert float((ga - gb).abs().max()) <= rtol * scale


def cached_and_online(data, teacher, cache, flags, k, arch=TINY_TRANSFORMER, task_args=TRANSLATION, cached_extra=()):
    """Loss and gradients of the same student on the same batch, teacher read from the cache and
    run online with --kd-teacher-topk k."""
    torch.manual_seed(5)
    task, model, cached, _ = build_for_training(
        data, *task_args, *arch, *flags, "--kd-teacher-cache", cache, *cached_extra
    )
    _, _, online, _ = build_for_training(
        data, *task_args, *arch, *flags, "--kd-teacher-path", teacher, "--kd-teacher-topk", str(k)
    )
    assert (cached.teacher is None) == (not cached_extra)  # no teacher loaded, unless given for later passes
    sample = train_batch(task)
    model.train()
    return loss_and_grads(cached, model, sample), loss_and_grads(online, model, sample)


# -- cached against online -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, k",
    [
        (WORD_KD + ["--kd-weight", "0.7", "--kd-temperature", "2"], 5),
        (WORD_KD + ["--kd-weight", "0.5", "--kd-teacher-topk", "3"], 3),
        (WORD_KD + ["--kd-weight", "0.5", "--skd-alpha", "0.4", "--skd-include-unseen"], 5),
        (TIE_KD + ["--kd-weight", "0.6", "--tie-topk", "4", "--tie-iterations", "1"], 5),
        (WORD_KD + ["--ignore-prefix-size", "1"], 5),  # the same cached positions dropped
    ],
    ids=["word-kd-T2", "word-kd-top3", "skd-word-kd", "tie-kd-pass1", "ignore-prefix-size"],
)
def test_cached_teacher_gives_the_online_loss_and_gradients(translation_setup, tmp_path, flags, k):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION, "--topk", "5")
    cached, online = cached_and_online(data, teacher, cache, flags, k)
    assert_same_loss_and_grads(cached, online, rtol=1e-5)


@pytest.mark.slow
def test_tie_kd_later_passes_run_the_teacher_beside_the_cache(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION, "--topk", "5")
    flags = TIE_KD + ["--kd-weight", "0.6", "--tie-topk", "4", "--tie-iterations", "2"]
    cached, online = cached_and_online(data, teacher, cache, flags, 5, cached_extra=["--kd-teacher-path", teacher])
    assert_same_loss_and_grads(cached, online, rtol=1e-5)


@pytest.mark.slow
def test_an_ensemble_cache_gives_the_online_ensemble_loss(translation_setup, tmp_path):
    data, teacher = translation_setup
    second, _ = save_teacher(tmp_path / "second", seed=2)
    ensemble = f"{teacher}:{second}"
    cache = build_cache(data, ensemble, tmp_path / "cache", *TRANSLATION, "--topk", "5", "--temperature", "2")
    flags = WORD_KD + ["--kd-temperature", "2"]
    cached, online = cached_and_online(data, ensemble, cache, flags, 5)
    assert_same_loss_and_grads(cached, online, rtol=1e-5)


@pytest.mark.slow
def test_a_sharded_split_is_cached_as_fairseq_train_combines_it(translation_setup, tmp_path):
    data, teacher = translation_setup
    write_split(f"{data}/train1.de-en.de", N_WORDS, [4, 6, 3], 7)
    write_split(f"{data}/train1.de-en.en", N_WORDS, [5, 2, 8], 8)
    # --upsample-primary 1: fairseq 0.12's default -1 breaks its own ConcatDataset of shards.
    shards = [*TRANSLATION, "--upsample-primary", "1"]
    cache = build_cache(data, teacher, tmp_path / "cache", *shards, "--topk", "5")
    manifest = json.loads((tmp_path / "cache" / MANIFEST).read_text())
    assert manifest["sentences"] == 15 and len(manifest["data_files"]) == 4
    cached, online = cached_and_online(data, teacher, cache, WORD_KD, 5, task_args=shards)
    assert_same_loss_and_grads(cached, online, rtol=1e-5)


@pytest.mark.slow
def test_the_cached_split_pickles_for_data_loader_workers(translation_setup, tmp_path):
    import pickle

    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    task, _, _, _ = build_for_training(data, *TRANSLATION, *TINY_TRANSFORMER, *WORD_KD, "--kd-teacher-cache", cache)
    task.load_dataset("train")
    dataset = task.dataset("train")
    copy = pickle.loads(pickle.dumps(dataset))
    samples = [dataset[i] for i in (3, 0, 7)]
    a, b = dataset.collater(samples), copy.collater(samples)
    assert torch.equal(a["teacher_cache"]["ids"], b["teacher_cache"]["ids"])
    assert torch.equal(a["teacher_cache"]["lprobs"], b["teacher_cache"]["lprobs"])


@pytest.mark.slow
def test_the_manifest_counts_and_sizes_and_a_float16_cache(translation_setup, tmp_path):
    data, teacher = translation_setup
    build_cache(data, teacher, tmp_path / "cache", *TRANSLATION, "--topk", "6")
    manifest = json.loads((tmp_path / "cache" / MANIFEST).read_text())
    assert manifest["dtype"] == "float32" and manifest["topk"] == 6
    assert manifest["sentences"] == 12 and manifest["target_tokens"] == 72
    # 72 positions x 6 x (2-byte id + 4-byte float) plus both indexes
    assert manifest["bytes"] == 72 * 6 * 6 + sum(
        os.path.getsize(tmp_path / "cache" / f"train.topk-{p}.idx") for p in ("ids", "lprobs")
    )
    assert manifest["teachers"][0]["sha256"] and manifest["layout"]["target_lang"] == "en"
    half = build_cache(data, teacher, tmp_path / "half", *TRANSLATION, "--topk", "6", "--dtype", "float16")
    cached, online = cached_and_online(data, teacher, half, WORD_KD + ["--kd-temperature", "1.5"], 6)
    assert_same_loss_and_grads(cached, online, rtol=2e-3)


@pytest.mark.slow
def test_cached_word_kd_on_an_adaptive_softmax_language_model(tmp_path):
    data = lm_data(tmp_path / "lm")
    teacher = save_lm_teacher(tmp_path / "teacher", data)
    cache = build_cache(data, teacher, tmp_path / "cache", *LM_TASK[:2], "--tokens-per-sample", "16", "--topk", "4")
    flags = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0", "--kd-weight", "0.5"]
    cached, online = cached_and_online(data, teacher, cache, flags, 4, arch=TINY_ADAPTIVE_LM, task_args=LM_TASK)
    assert_same_loss_and_grads(cached, online, rtol=1e-5)


@pytest.mark.slow
def test_cached_word_kd_on_a_language_model_with_a_beginning_of_sentence_token(tmp_path):
    data = lm_data(tmp_path / "lm", lengths=(12, 7, 14, 9, 15, 11, 6, 3))  # whole sentences fit 16 with bos
    teacher = save_lm_teacher(tmp_path / "teacher", data)
    # (break mode complete: fairseq 0.12's eos mode calls numpy.compat, gone from numpy 2)
    layout = ["--tokens-per-sample", "16", "--sample-break-mode", "complete", "--add-bos-token"]
    cache = build_cache(data, teacher, tmp_path / "cache", *LM_TASK[:2], *layout, "--topk", "4")
    assert json.loads((tmp_path / "cache" / MANIFEST).read_text())["target_offset"] == 1
    arch = [*TINY_LM, "--sample-break-mode", "complete", "--add-bos-token"]
    flags = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0", "--kd-weight", "0.5"]
    cached, online = cached_and_online(data, teacher, cache, flags, 4, arch=arch, task_args=LM_TASK)
    assert_same_loss_and_grads(cached, online, rtol=1e-5)


@pytest.mark.slow
def test_validation_reads_no_cache_and_computes_the_plain_loss(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    task, model, criterion, _ = build_for_training(
        data, *TRANSLATION, *TINY_TRANSFORMER, *WORD_KD, "--kd-teacher-cache", cache
    )
    task.load_dataset("valid")
    valid = task.dataset("valid")
    sample = valid.collater([valid[i] for i in range(len(valid))])
    assert "teacher_cache" not in sample
    model.eval()
    _, _, log = criterion(model, sample)
    assert "kd_kl" not in log


# -- every cache that does not fit is refused before a step ---------------------------------------


def refused(data, cache, *flags, match, load=True, task_args=TRANSLATION, arch=TINY_TRANSFORMER):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        task, _, _, _ = build_for_training(data, *task_args, *arch, *flags, "--kd-teacher-cache", cache)
        if load:
            task.load_dataset("train")


@pytest.mark.slow
def test_a_cache_of_another_dictionary_is_refused(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    other = translation_data(tmp_path / "other", n_words=N_WORDS + 9)
    refused(other, cache, *WORD_KD, match=r"another source dictionary", load=False)


@pytest.mark.slow
def test_a_cache_of_another_split_is_refused(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION, "--subset", "valid")
    refused(data, cache, *WORD_KD, match=r"holds split 'valid', training reads --train-subset 'train'", load=False)


@pytest.mark.slow
def test_a_cache_of_other_data_is_refused_by_the_sha256_of_its_files(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    # The same targets, another source (noised or back-translated data): the teacher's outputs differ.
    other = tmp_path / "other"
    translation_data(other)
    write_split(other / "train.de-en.de", N_WORDS, [max(2, n - 1) for n in (5, 9, 3, 7, 6, 8, 4, 10, 5, 6, 2, 7)], 99)
    refused(str(other), cache, *WORD_KD, match=r"is not the data the cache was built from", load=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "lengths, message",
    [
        ((5, 9, 3, 7, 6, 8, 4, 10, 5, 6, 2), r"has 11 samples, the cache 12"),
        ((5, 9, 3, 7, 6, 8, 4, 10, 5, 6, 3, 7), r"sample 10 of the training split has 3 target positions, the cache 2"),
    ],
    ids=["count", "lengths"],
)
def test_a_cache_of_other_data_is_refused_when_the_split_loads(translation_setup, tmp_path, lengths, message):
    """Where the split's files cannot be hashed (a raw-text format: no data_sha256 in the manifest),
    its samples are compared when it loads."""
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    manifest = json.loads((tmp_path / "cache" / MANIFEST).read_text())
    assert manifest["data_files"] == ["train.de-en.de.bin", "train.de-en.en.bin"]
    del manifest["data_sha256"]
    (tmp_path / "cache" / MANIFEST).write_text(json.dumps(manifest))
    other = translation_data(tmp_path / "other", lengths=lengths)
    refused(other, cache, *WORD_KD, match=message)


@pytest.mark.slow
def test_samples_that_differ_from_run_to_run_cannot_be_cached(tmp_path, translation_setup):
    data = lm_data(tmp_path / "lm")
    teacher = save_lm_teacher(tmp_path / "teacher", data)
    crop = ["--tokens-per-sample", "16", "--shorten-method", "random_crop"]
    with pytest.raises(SystemExit, match=r"random_crop crops split 'train' at random"):
        build_cache(data, teacher, tmp_path / "cache", *LM_TASK[:2], *crop)
    tdata, tteacher = translation_setup
    with pytest.raises(SystemExit, match=r"names several directories"):
        build_cache(f"{tdata}:{tdata}", tteacher, tmp_path / "c2", *TRANSLATION)


@pytest.mark.slow
def test_a_language_model_cache_of_another_block_layout_is_refused(tmp_path):
    data = lm_data(tmp_path / "lm")
    teacher = save_lm_teacher(tmp_path / "teacher", data)
    cache = build_cache(data, teacher, tmp_path / "cache", *LM_TASK[:2], "--tokens-per-sample", "16")
    arch = [a if a != "16" else "8" for a in TINY_ADAPTIVE_LM]  # --tokens-per-sample 8
    flags = ["--criterion", "label_smoothed_word_kd", "--label-smoothing", "0"]
    refused(
        data,
        cache,
        *flags,
        match=r"built with --tokens-per-sample 16, training uses --tokens-per-sample 8",
        task_args=LM_TASK,
        arch=arch,
        load=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (WORD_KD + ["--kd-teacher-topk", "6"], r"--kd-teacher-topk 6: the cache keeps the teacher's top 5"),
        (TIE_KD + ["--tie-topk", "6", "--tie-iterations", "1"], r"--tie-topk must be in \[1, 5\]"),
        (TIE_KD + ["--tie-topk", "3", "--tie-iterations", "3"], r"passes 2 to 3 decode the student's own predictions"),
    ],
    ids=["kd-teacher-topk", "tie-topk", "tie-iterations-without-teacher"],
)
def test_flags_the_cache_cannot_serve_are_refused(translation_setup, tmp_path, flags, message):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION, "--topk", "5")
    refused(data, cache, *flags, match=message, load=False)


@pytest.mark.slow
def test_word_kd_refuses_a_cache_and_a_teacher_together(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    refused(data, cache, *WORD_KD, "--kd-teacher-path", teacher, match=r"the cache replaces the teacher", load=False)


@pytest.mark.slow
def test_tie_kd_later_passes_need_the_cache_s_own_teacher(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    other, _ = save_teacher(tmp_path / "other-teacher", seed=7)
    flags = [*TIE_KD, "--tie-topk", "3", "--tie-iterations", "2"]
    refused(data, cache, *flags, "--kd-teacher-path", other, match=r"are not the teacher\(s\) the cache", load=False)
    task, _, tie, _ = build_for_training(
        data, *TRANSLATION, *TINY_TRANSFORMER, *flags, "--kd-teacher-path", teacher, "--kd-teacher-cache", cache
    )
    assert tie.teacher is not None and tie.teacher_term.topk == 8  # the later passes keep the cache's K


@pytest.mark.slow
def test_an_ensemble_cache_serves_its_own_temperature_only(translation_setup, tmp_path):
    data, teacher = translation_setup
    second, _ = save_teacher(tmp_path / "second", seed=2)
    cache = build_cache(data, f"{teacher}:{second}", tmp_path / "cache", *TRANSLATION, "--temperature", "2")
    refused(
        data,
        cache,
        *WORD_KD,
        "--kd-temperature",
        "1",
        match=r"averages an ensemble of 2 teachers at temperature 2.0",
        load=False,
    )
    build_for_training(
        data, *TRANSLATION, *TINY_TRANSFORMER, *WORD_KD, "--kd-temperature", "2", "--kd-teacher-cache", cache
    )


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "missing-index", "truncated", "manifest", "manifest-key"])
def test_a_damaged_cache_is_refused(translation_setup, tmp_path, damage):
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    lprobs = tmp_path / "cache" / "train.topk-lprobs.bin"
    manifest = tmp_path / "cache" / MANIFEST
    if damage == "missing":
        lprobs.unlink()
        message = r"train.topk-lprobs.bin is missing"
    elif damage == "missing-index":
        (tmp_path / "cache" / "train.topk-ids.idx").unlink()
        message = r"train.topk-ids.idx is missing"
    elif damage == "manifest-key":
        manifest.write_text(json.dumps({k: v for k, v in json.loads(manifest.read_text()).items() if k != "topk"}))
        message = r"lacks topk"
    elif damage == "truncated":
        lprobs.write_bytes(lprobs.read_bytes()[:-16])
        message = r"is truncated or not this cache's"
    else:
        (tmp_path / "cache" / MANIFEST).unlink()
        message = r"no manifest.json in"
    refused(data, cache, *WORD_KD, match=message, load=False)


@pytest.mark.slow
def test_a_batch_whose_targets_differ_from_the_cache_is_refused(translation_setup, tmp_path):
    data, teacher = translation_setup
    cache = TeacherCache(build_cache(data, teacher, tmp_path / "cache", *TRANSLATION))
    target = torch.full((2, 10), 1)
    target[0, :5], target[1, :8] = 7, 7  # samples 0 and 1 have 5 and 9 positions
    with pytest.raises(ValueError, match=r"sample 1 has 8 target positions, the cache 9"):
        cache.collate(torch.tensor([0, 1]), target, pad=1)
    target[1, 2] = 1  # padding inside a target
    with pytest.raises(ValueError, match=r"right-padded targets"):
        cache.collate(torch.tensor([0, 1]), target, pad=1)


@pytest.mark.slow
def test_the_cache_command_refuses_bad_arguments(translation_setup, tmp_path):
    data, teacher = translation_setup
    with pytest.raises(SystemExit, match=r"--topk must be >= 1, got 0"):
        build_cache(data, teacher, tmp_path / "a", *TRANSLATION, "--topk", "0")
    build_cache(data, teacher, tmp_path / "b", *TRANSLATION)
    with pytest.raises(SystemExit, match=r"already holds a teacher cache"):
        build_cache(data, teacher, tmp_path / "b", *TRANSLATION)
    en_de, _ = save_teacher(tmp_path / "en-de", langs=("en", "de"))
    with pytest.raises(SystemExit, match=r"teacher .* translates en-de, the student de-en"):
        build_cache(data, en_de, tmp_path / "c", *TRANSLATION)
    assert not (tmp_path / "c" / MANIFEST).exists()


@pytest.mark.slow
def test_the_teacher_presets_read_a_cache_given_to_train_sh(translation_setup, tmp_path):
    """configs/presets.sh with KD_TEACHER_CACHE (train.sh --teacher-cache): word-kd and skd-word-kd
    read the cache alone; tie-kd reads it in its first pass and runs the teacher after."""
    data, teacher = translation_setup
    cache = build_cache(data, teacher, tmp_path / "cache", *TRANSLATION)
    presets = preset_arguments({"KD_TEACHER": teacher, "KD_TEACHER_CACHE": cache})
    for name in ("word-kd", "skd-word-kd", "tie-kd"):
        _, _, criterion, _ = build_for_training(data, *TRANSLATION, *TINY_TRANSFORMER, *presets[name])
        assert criterion.teacher_cache is not None, name
        assert (criterion.teacher is not None) == (name == "tie-kd"), name
