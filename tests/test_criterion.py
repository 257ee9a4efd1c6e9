"""The fairseq adapter, in process: against label_smoothed_cross_entropy and the references."""

import pytest
import torch
from conftest import TINY_TRANSFORMER, build_translation, translation_sample, write_dictionary
from fairseq.logging import metrics
from fairseq.trainer import Trainer
from references import brute_force_neighbours, reference_loss, reference_soft_targets

from skd_fairseq.criterions.fairseq_access import excluded_token_ids, output_embedding
from skd_fairseq.schedule import skd_alpha

# The criterion with its defaults, and (SKD) with candidates among every token, as the references draw them.
SKD_DEFAULTS = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0.1"]
SKD = SKD_DEFAULTS + ["--skd-include-unseen"]
LS = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]


def loss_and_grads(model, criterion, sample, train=True):
    model.train(train)
    model.zero_grad()
    loss, sample_size, log = criterion(model, sample)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), log, grads


def test_alpha_zero_is_exactly_label_smoothed_cross_entropy(tmp_path, fresh_metrics):
    task, model, skd, _ = build_translation(tmp_path, SKD + ["--skd-alpha", "0"])
    _, _, ls, _ = build_translation(tmp_path, LS)
    sample = translation_sample(task)
    loss, log, grads = loss_and_grads(model, skd, sample)
    want, want_log, want_grads = loss_and_grads(model, ls, sample)
    assert torch.equal(loss, want)
    assert torch.equal(log["nll_loss"], want_log["nll_loss"])
    assert grads.keys() == want_grads.keys()
    assert all(torch.equal(grads[n], want_grads[n]) for n in grads)
    # No SKD term, but the same log keys as an SKD step (zeros), so ranks and micro-batches sum.
    assert log["skd_alpha"] == 0.0 and log["skd_ntokens"] == 0 and log["skd_loss"] == 0


def test_validation_reports_the_plain_label_smoothed_loss(tmp_path, fresh_metrics):
    task, model, skd, _ = build_translation(tmp_path, SKD + ["--skd-alpha", "0.7"])
    _, _, ls, _ = build_translation(tmp_path, LS)
    sample = translation_sample(task, seed=1)
    model.eval()
    with torch.no_grad():
        loss, _, log = skd(model, sample)
        want, _, want_log = ls(model, sample)
    assert torch.equal(loss, want) and torch.equal(log["nll_loss"], want_log["nll_loss"])
    assert not any(key.startswith("skd_") for key in log)


@pytest.mark.parametrize("similarity", ["cosine", "l2", "dot"])
@pytest.mark.parametrize("refresh", ["0", "50"])
def test_neighbour_mode_loss_equals_reference(tmp_path, fresh_metrics, similarity, refresh):
    args = SKD + [
        "--skd-alpha",
        "0.4",
        "--skd-topk",
        "5",
        "--skd-similarity",
        similarity,
        "--skd-temperature",
        "0.5",
        "--skd-neighbour-refresh",
        refresh,
    ]
    task, model, criterion, _ = build_translation(tmp_path, args)
    sample = translation_sample(task, seed=2)
    model.train()
    loss, _, log = criterion(model, sample)

    lprobs, target = criterion.get_lprobs_and_target(model, model(**sample["net_input"]), sample)
    weight = model.decoder.output_projection.weight.detach()
    exclude = excluded_token_ids(task.target_dictionary)
    candidates = brute_force_neighbours(weight, target, 5, similarity, exclude).indices
    q = reference_soft_targets(weight, target, candidates, similarity, 0.5)
    want = reference_loss(lprobs.detach(), target, candidates, q, 0.4, 0.1, task.target_dictionary.pad())
    assert float(loss.detach()) == pytest.approx(want[0], rel=1e-5)
    assert float(log["nll_loss"]) == pytest.approx(want[1], rel=1e-5)
    assert float(log["skd_loss"]) == pytest.approx(want[2], rel=1e-5)
    real = target.ne(task.target_dictionary.pad())
    assert int(log["skd_ntokens"]) == int(real.sum()) == sample["ntokens"]
    assert float(log["skd_gold_q"]) == pytest.approx(float(q[:, 0][real].sum()), rel=1e-5)


def test_predicted_mode_loss_equals_reference(tmp_path, fresh_metrics):
    args = SKD + ["--skd-alpha", "0.6", "--skd-topk", "4", "--skd-candidates", "predicted", "--skd-temperature", "1"]
    task, model, criterion, _ = build_translation(tmp_path, args)
    sample = translation_sample(task, seed=3)
    model.train()
    loss, _, log = criterion(model, sample)

    lprobs, target = criterion.get_lprobs_and_target(model, model(**sample["net_input"]), sample)
    exclude = set(excluded_token_ids(task.target_dictionary))
    candidates = torch.tensor(
        [
            [i for i in row.argsort(descending=True).tolist() if i != t and i not in exclude][:4]
            for row, t in zip(lprobs.detach(), target.tolist())
        ]
    )
    weight = model.decoder.output_projection.weight.detach()
    q = reference_soft_targets(weight, target, candidates, "cosine", 1.0)
    want = reference_loss(lprobs.detach(), target, candidates, q, 0.6, 0.1, task.target_dictionary.pad())
    assert float(loss.detach()) == pytest.approx(want[0], rel=1e-5)
    assert float(log["skd_loss"]) == pytest.approx(want[2], rel=1e-5)


def test_alpha_follows_the_trainers_update_count(tmp_path, fresh_metrics):
    args = SKD + ["--skd-alpha", "0.8", "--skd-start-update", "3", "--skd-warmup-updates", "4"]
    task, model, criterion, cfg = build_translation(tmp_path, args)
    trainer = Trainer(cfg, task, model, criterion)
    sample = translation_sample(task)
    for u in range(10):
        assert trainer.get_num_updates() == u
        log = trainer.train_step([sample, sample])  # two micro-batches, one update
        assert log["skd_alpha"] == pytest.approx(skd_alpha(u, 0.8, 3, 4), abs=1e-4)
        assert ("skd_loss" in log) == (u >= 3)
    # A trainer that resumes at update 5 drives the same schedule from there.
    trainer.set_num_updates(5)
    assert trainer.train_step([sample])["skd_alpha"] == pytest.approx(skd_alpha(5, 0.8, 3, 4))


def test_neighbour_table_is_recomputed_every_refresh_interval(tmp_path, fresh_metrics, monkeypatch):
    from skd_fairseq.criterions import candidate_state as module

    calls = []
    original = module.neighbour_table
    monkeypatch.setattr(module, "neighbour_table", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    args = SKD + ["--skd-alpha", "0.5", "--skd-neighbour-refresh", "10"]
    task, model, criterion, _ = build_translation(tmp_path, args)
    sample = translation_sample(task)
    model.train()
    table_at = {}
    for u in range(25):
        criterion.set_num_updates(u)
        for _ in range(2):  # two micro-batches per update (--update-freq 2)
            criterion(model, sample)
        table_at[u] = criterion.candidates.neighbour_table.table
        with torch.no_grad():  # the weights move between updates
            model.decoder.output_projection.weight.add_(0.3 * torch.randn_like(model.decoder.output_projection.weight))
    assert len(calls) == 3  # at updates 0, 10 and 20
    assert all(table_at[u] is table_at[0] for u in range(10))
    assert table_at[10] is not table_at[9] and table_at[20] is not table_at[19]


def record_random_draws(monkeypatch):
    from skd_fairseq.criterions import candidate_state as module

    draws = []
    original = module.random_candidates
    monkeypatch.setattr(module, "random_candidates", lambda *a, **kw: draws.append(original(*a, **kw)) or draws[-1])
    return draws


def test_random_mode_loss_equals_reference_on_its_draws(tmp_path, fresh_metrics, monkeypatch):
    draws = record_random_draws(monkeypatch)
    args = SKD + ["--skd-alpha", "0.5", "--skd-topk", "6", "--skd-candidates", "random", "--skd-temperature", "0.3"]
    task, model, criterion, _ = build_translation(tmp_path, args)
    sample = translation_sample(task, seed=4)
    model.train()
    loss, _, log = criterion(model, sample)
    lprobs, target = criterion.get_lprobs_and_target(model, model(**sample["net_input"]), sample)
    candidates = draws[-1]
    assert candidates.shape == (target.numel(), 6)
    assert not candidates.eq(target.unsqueeze(1)).any()
    assert not torch.isin(candidates, torch.tensor(excluded_token_ids(task.target_dictionary))).any()
    weight = model.decoder.output_projection.weight.detach()
    q = reference_soft_targets(weight, target, candidates, "cosine", 0.3)
    want = reference_loss(lprobs.detach(), target, candidates, q, 0.5, 0.1, task.target_dictionary.pad())
    assert float(loss.detach()) == pytest.approx(want[0], rel=1e-5)
    assert float(log["skd_loss"]) == pytest.approx(want[2], rel=1e-5)


def test_random_draws_are_reproducible_and_fresh_at_every_step(tmp_path, fresh_metrics, monkeypatch):
    draws = record_random_draws(monkeypatch)
    args = SKD + ["--skd-alpha", "0.5", "--skd-candidates", "random"]

    def steps(seed, updates=(0, 0, 1, 2)):
        task, model, criterion, _ = build_translation(tmp_path, args + ["--seed", str(seed)])
        sample = translation_sample(task, seed=5)
        model.train()
        del draws[:]
        for u in updates:  # update 0 has two micro-batches
            criterion.set_num_updates(u)
            criterion(model, sample)
        return list(draws)

    first, again, other_seed = steps(1), steps(1), steps(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # reproducible under the seed
    for i in range(len(first)):  # fresh per micro-batch and update, and per seed
        assert (first[i] != other_seed[i]).float().mean() > 0.8
        for j in range(i):
            assert (first[i] != first[j]).float().mean() > 0.8


def test_gold_mass_mode_puts_rho_on_the_gold_token_and_logs_tau(tmp_path, fresh_metrics):
    args = SKD + ["--skd-alpha", "0.5", "--skd-gold-mass", "0.75", "--skd-topk", "5"]
    task, model, criterion, _ = build_translation(tmp_path, args)
    assert criterion.settings.temperature is None and criterion.settings.gold_mass == 0.75
    model.train()
    logs = [criterion(model, translation_sample(task, seed=s))[2] for s in range(2)]
    ntok = sum(int(log["skd_ntokens"]) for log in logs)
    assert sum(int(log["skd_tau_ntokens"]) for log in logs) == ntok  # reachable everywhere
    with metrics.aggregate() as agg:
        type(criterion).reduce_metrics(logs)
    values = agg.get_smoothed_values()
    assert values["skd_gold_q"] == pytest.approx(0.75, abs=1e-4)
    assert values["skd_tau"] == pytest.approx(sum(float(log["skd_tau"]) for log in logs) / ntok, abs=1e-4)
    assert values["skd_tau"] > 0
    # With a temperature, tau is the flag's and is not logged.
    task, model, criterion, _ = build_translation(tmp_path, SKD + ["--skd-temperature", "1"])
    assert criterion.settings.temperature == 1.0 and criterion.settings.gold_mass is None
    model.train()
    assert "skd_tau" not in criterion(model, translation_sample(task))[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--skd-gold-mass", "0.8", "--skd-temperature", "0.5"],
            r"give --skd-temperature or --skd-gold-mass, not both",
        ),
        (
            ["--skd-gold-mass", "0.1"],
            r"--skd-gold-mass: gold mass must be in \(1/\(k\+1\), 1\) = \(0.1111, 1\) for k = 8",
        ),
        (["--skd-gold-mass", "1"], r"--skd-gold-mass: gold mass must be in"),
        (["--skd-gold-mass", "0.8", "--skd-similarity", "dot"], r"--skd-gold-mass needs --skd-similarity cosine or l2"),
    ],
)
def test_gold_mass_flags_are_checked_when_the_criterion_is_built(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        build_translation(tmp_path, SKD + flags)


def test_excluded_ids_are_specials_extra_specials_and_filler(tmp_path):
    from fairseq.data import Dictionary

    write_dictionary(tmp_path / "dict.txt", 13)
    d = Dictionary.load(str(tmp_path / "dict.txt"))
    filler = [i for i, s in enumerate(d.symbols) if s.startswith("madeupword")]
    assert filler and excluded_token_ids(d) == [0, 1, 2, 3] + filler
    d2 = Dictionary(extra_special_symbols=["<mask>", "<sep>"])
    d2.add_symbol("hello")
    assert excluded_token_ids(d2) == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--skd-topk", "0"], r"--skd-topk: k=0 is out of range: it must be an integer in \[1, "),
        (["--skd-topk", "100000"], r"--skd-topk: k=100000 is out of range"),
        (["--skd-alpha", "1.5"], r"--skd-alpha must be in \[0, 1\], got 1.5"),
        (["--skd-alpha", "-0.5"], r"--skd-alpha must be in \[0, 1\]"),
        (["--skd-temperature", "0"], r"--skd-temperature must be > 0, got 0"),
        (["--skd-start-update", "-1"], r"--skd-start-update must be >= 0"),
        (["--skd-warmup-updates", "-5"], r"--skd-warmup-updates must be >= 0"),
        (["--skd-neighbour-refresh", "-1"], r"--skd-neighbour-refresh must be >= 0"),
    ],
)
def test_bad_flags_fail_when_the_criterion_is_built(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        build_translation(tmp_path, SKD + flags)


def test_k_limit_counts_the_excluded_symbols(tmp_path):
    # 60 words + 4 specials, padded to 64 with 0 fillers; k <= 60 - 1.
    task, _, criterion, _ = build_translation(tmp_path, SKD + ["--skd-topk", "59"])
    assert len(task.target_dictionary) == 64 and criterion.settings.topk == 59
    with pytest.raises(ValueError, match=r"\[1, 59\]"):
        build_translation(tmp_path, SKD + ["--skd-topk", "60"])


@pytest.mark.parametrize("choice", ["--skd-candidates", "--skd-similarity"])
def test_unknown_choices_are_rejected_by_the_parser(tmp_path, choice, capsys):
    with pytest.raises(SystemExit):
        build_translation(tmp_path, SKD + [choice, "nearest"])
    assert f"argument {choice}: invalid choice: 'nearest'" in capsys.readouterr().err


def test_adaptive_softmax_with_label_smoothing_gets_a_clear_error(tmp_path, fresh_metrics):
    arch = [a for a in TINY_TRANSFORMER if a != "--share-all-embeddings"]
    arch += ["--adaptive-softmax-cutoff", "20,40"]
    task, model, criterion, _ = build_translation(tmp_path, SKD, arch_args=arch)
    model.train()
    with pytest.raises(ValueError, match=r"--label-smoothing 0.1 on an adaptive softmax.*Use --label-smoothing 0"):
        criterion(model, translation_sample(task))


@pytest.mark.parametrize(
    "mode, refresh", [("neighbours", "0"), ("neighbours", "5"), ("random", "50"), ("predicted", "50")]
)
def test_exclude_unseen_draws_candidates_among_seen_targets_only(tmp_path, fresh_metrics, monkeypatch, mode, refresh):
    from skd_fairseq.criterions import candidate_state as module

    chosen = []
    from skd_fairseq.criterions.candidate_state import NeighbourTable

    original = NeighbourTable.candidates
    monkeypatch.setattr(
        NeighbourTable,
        "candidates",
        lambda self, *a, _o=original, **kw: chosen.append(_o(self, *a, **kw)) or chosen[-1],
    )
    from skd_fairseq.criterions import scores as scores_module

    for owner, name in ((module, "random_candidates"), (scores_module, "predicted_topk")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _o=original, **kw: chosen.append(_o(*a, **kw)) or chosen[-1])
    args = SKD_DEFAULTS + [
        "--skd-alpha",
        "0.5",
        "--skd-topk",
        "3",
        "--skd-candidates",
        mode,
        "--skd-neighbour-refresh",
        refresh,
        "--skd-exclude-unseen",
    ]
    task, model, criterion, _ = build_translation(tmp_path, args)
    model.train()
    pad = task.target_dictionary.pad()
    seen = set()
    for step in range(3):
        criterion.set_num_updates(step * 5)
        sample = translation_sample(task, seed=step)
        target = sample["target"]
        seen |= set(target[target.ne(pad)].tolist())
        _, _, log = criterion(model, sample)
        assert log["skd_ntokens"] > 0
        assert set(chosen[-1][target.view(-1).ne(pad)].flatten().tolist()) <= seen
    assert criterion.candidates.seen_targets.seen.nonzero().squeeze(1).tolist() == sorted(seen)


def test_exclude_unseen_waits_for_k_plus_one_seen_targets(tmp_path, fresh_metrics):
    task, model, criterion, _ = build_translation(
        tmp_path, SKD_DEFAULTS + ["--skd-alpha", "0.5", "--skd-topk", "8", "--skd-exclude-unseen"]
    )
    _, _, ls, _ = build_translation(tmp_path, LS)
    sample = translation_sample(task, batch=1, tgt_len=4)  # 4 distinct targets at most: fewer than k + 1
    model.train()
    loss, _, log = criterion(model, sample)
    assert log["skd_ntokens"] == 0 and log["skd_loss"] == 0 and log["skd_alpha"] == 0.5
    torch.manual_seed(0)
    assert torch.allclose(loss, ls(model, sample)[0])


def test_exclude_unseen_counts_targets_before_skd_starts_and_warns_on_resume(tmp_path, fresh_metrics, caplog):
    task, model, criterion, _ = build_translation(
        tmp_path,
        SKD_DEFAULTS + ["--skd-alpha", "0.5", "--skd-topk", "3", "--skd-exclude-unseen", "--skd-start-update", "5"],
    )
    pad = task.target_dictionary.pad()
    model.train()
    sample = translation_sample(task, seed=3)
    with caplog.at_level("WARNING"):
        _, _, log = criterion(model, sample)  # update 0: alpha 0, no SKD term yet
    assert log["skd_alpha"] == 0 and log["skd_ntokens"] == 0
    target = sample["target"]
    assert criterion.candidates.seen_targets.seen.nonzero().squeeze(1).tolist() == sorted(
        set(target[target.ne(pad)].tolist())
    )
    assert "resuming" not in caplog.text
    model.eval()  # validation targets are not training targets
    criterion(model, translation_sample(task, seed=4))
    assert criterion.candidates.seen_targets.seen.nonzero().squeeze(1).tolist() == sorted(
        set(target[target.ne(pad)].tolist())
    )
    # A criterion whose first training step comes after update 0 is a resumed run: it says what it lost.
    _, model, resumed, _ = build_translation(
        tmp_path, SKD_DEFAULTS + ["--skd-alpha", "0.5", "--skd-topk", "3", "--skd-exclude-unseen"]
    )
    resumed.set_num_updates(120)
    model.train()
    with caplog.at_level("WARNING"):
        resumed(model, sample)
        resumed(model, sample)
    assert caplog.text.count("--skd-exclude-unseen: resuming at update 120") == 1


def test_output_embedding_of_untied_and_lstm_decoders(tmp_path):
    untied = [a for a in TINY_TRANSFORMER if a != "--share-all-embeddings"]
    task, model, _, _ = build_translation(tmp_path, SKD, arch_args=untied)
    weight = output_embedding(model, len(task.target_dictionary))
    assert weight is model.decoder.output_projection.weight
    assert weight is not model.decoder.embed_tokens.weight
    lstm = [
        "--arch",
        "lstm",
        "--encoder-embed-dim",
        "16",
        "--decoder-embed-dim",
        "16",
        "--decoder-out-embed-dim",
        "16",
        "--encoder-hidden-size",
        "16",
        "--decoder-hidden-size",
        "16",
    ]
    task, model, _, _ = build_translation(tmp_path, SKD, arch_args=lstm)
    assert output_embedding(model, len(task.target_dictionary)) is model.decoder.fc_out.weight


def test_reduce_metrics_logs_skd_metrics_in_training_only(tmp_path, fresh_metrics):
    task, model, criterion, _ = build_translation(tmp_path, SKD + ["--skd-alpha", "0.3"])
    model.train()
    logs = [criterion(model, translation_sample(task, seed=s))[2] for s in range(3)]
    with metrics.aggregate() as agg:
        type(criterion).reduce_metrics(logs)
    values = agg.get_smoothed_values()
    ntok = sum(int(log["skd_ntokens"]) for log in logs)
    assert values["skd_alpha"] == pytest.approx(0.3)
    skd = sum(float(log["skd_loss"]) for log in logs)
    assert values["skd_loss"] == pytest.approx(skd / ntok / torch.log(torch.tensor(2.0)).item(), abs=1e-3)
    gold = sum(float(log["skd_gold_q"]) for log in logs)
    assert values["skd_gold_q"] == pytest.approx(gold / ntok, abs=1e-4)
    assert 0 < values["skd_gold_q"] < 1

    model.eval()
    with torch.no_grad():
        valid_logs = [criterion(model, translation_sample(task, seed=s))[2] for s in range(2)]
    with metrics.aggregate() as agg:
        type(criterion).reduce_metrics(valid_logs)
    assert {"loss", "nll_loss", "ppl"} <= set(agg.get_smoothed_values())
    assert not any(key.startswith("skd_") for key in agg.get_smoothed_values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", ["neighbours", "predicted"])
def test_half_precision_model_gives_finite_loss_close_to_fp32(tmp_path, fresh_metrics, dtype, mode):
    torch.manual_seed(0)
    task, model, criterion, _ = build_translation(
        tmp_path, SKD + ["--skd-alpha", "1.0", "--skd-candidates", mode, "--skd-temperature", "0.05"]
    )
    sample = translation_sample(task)
    model.train()
    want, _, want_log = criterion(model, sample)
    half = model.to(dtype)
    loss, _, log = criterion(half, sample)
    assert torch.isfinite(loss) and torch.isfinite(log["skd_loss"])
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=0.02)
    assert float(log["skd_gold_q"]) == pytest.approx(float(want_log["skd_gold_q"]), rel=0.05)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in half.parameters() if p.grad is not None)
