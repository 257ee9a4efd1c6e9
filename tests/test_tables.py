"""skd-fairseq-tables and the archives of runs: means, tests over seeds and bootstraps, plots, cost
columns, refusals, and the committed tables rebuilt byte for byte from their archives."""

import json
import math
import statistics

import pytest
from conftest import REPO, make_tables, run, tool

from skd_experiments import plots


def write_result(run_dir, method, seed, hyps, refs, bleu, chrf, log_points=()):
    run_dir.mkdir(parents=True)
    (run_dir / "hyp.test.txt").write_text("\n".join(hyps) + "\n")
    (run_dir / "ref.txt").write_text("\n".join(refs) + "\n")
    (run_dir / "train.log").write_text(
        "".join(
            f"x | INFO | valid | epoch {i:03d} | valid on 'valid' subset | loss 5 | nll_loss 4 | ppl {ppl} | wps 1 | num_updates {u}\n"
            for i, (u, ppl) in enumerate(log_points, 1)
        )
    )
    result = {
        "dataset": "toy",
        "pair": "de-en",
        "split": "test",
        "hypotheses": "hyp.test.txt",
        "references": "ref.txt",
        "metrics": {"bleu": bleu, "chrf": chrf, "bleu_signature": "sig-bleu", "chrf_signature": "sig-chrf"},
        "training": {"preset": method, "method": method, "seed": str(seed), "extra_flags": ""},
    }
    (run_dir / "result.test.json").write_text(json.dumps(result))
    return run_dir / "result.test.json"


# Committed tables rebuilt from their archives with the options their headers name:
# (results/NAME.md, which of its tables (0: the first), the archives its rows come from, the
# result file, options). A row is the first archive's directory of that method name.
COMMITTED_TABLES = [
    (
        "multi30k-en-lm",
        0,
        ["multi30k-en-lm-runs"],
        "result.test.json",
        ["--significance", "--training-metrics", "--flags", "--compare", "skd-neighbours:skd-random"],
    ),
    ("multi30k-de-en-sweep", 0, ["multi30k-de-en-sweep-runs"], "result.valid.json", ["--flags", "--training-metrics"]),
    (
        "multi30k-de-en-sweep",
        1,  # issue 47's self-distillation sweep beside the first sweep's baseline and R-Drop
        ["multi30k-de-en-self-kd-sweep-runs", "multi30k-de-en-sweep-runs"],
        "result.valid.json",
        ["--flags"],
    ),
    (
        "kd-multi30k-de-en",
        0,
        ["kd-multi30k-de-en-runs"],
        "result.test.json",
        ["--significance", "--cost-from", REPO / "benchmarks" / "results" / "train-cpu-multi30k-kd.json"],
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,table,archives,split_file,options", COMMITTED_TABLES, ids=[f"{t[0]}-{t[1]}" for t in COMMITTED_TABLES]
)
def test_committed_tables_rebuild_byte_for_byte_from_their_archives(name, table, archives, split_file, options):
    """The statistics (scipy's t-test, the perplexity bootstrap), the log reader (training metrics)
    and the table writer give the committed results/NAME.md byte for byte."""
    committed = (REPO / "results" / f"{name}.md").read_text()
    rows = []  # the rows in the committed order: the tables keep the order of the result files
    for line in committed.split("\n| method |")[table + 1].splitlines()[2:]:
        if not line.startswith("| "):
            break
        rows.append(line.split(" | ")[0][2:])
    files = []
    for method in rows:
        found = [REPO / "results" / a / method for a in archives if (REPO / "results" / a / method).is_dir()]
        assert found, f"no archive of {archives} holds {method}"
        files += sorted(found[0].glob(f"seed*/{split_file}"))
    assert len(files) >= len(rows) > 1
    rebuilt = make_tables(*files, *options).stdout
    assert rebuilt.startswith("| method |") and rebuilt in committed


@pytest.mark.slow
def test_committed_epoch_tables_rebuild_byte_for_byte():
    for name in ("multi30k-de-en-epochs", "multi30k-en-lm-epochs"):
        rebuilt = run(["skd-fairseq-choose-epochs", "--markdown", REPO / "results" / f"{name}.log"]).stdout
        assert rebuilt.startswith("| epoch |") and rebuilt in (REPO / "results" / f"{name}.md").read_text()


@pytest.mark.slow
def test_make_tables_means_significance_and_plot(tmp_path):
    refs = [f"the cat number {i} sat on the mat ." for i in range(40)]
    worse = [f"a cat number {i} sat on mat ." for i in range(40)]
    files = []
    for seed, (b, s) in enumerate([(20.0, 24.0), (22.0, 26.0)], 1):
        files.append(
            write_result(
                tmp_path / f"baseline{seed}", "baseline", seed, worse, refs, b, 40.0, [(100, 50.0), (200, 30.0)]
            )
        )
        files.append(
            write_result(
                tmp_path / f"skd{seed}", "skd-neighbours", seed, refs, refs, s, 45.0, [(100, 45.0), (200, 25.0)]
            )
        )
    lm = [
        write_lm_result(tmp_path / "lm-base", "baseline", [-4.0, -5.0] * 30),
        write_lm_result(tmp_path / "lm-skd", "skd-neighbours", [-3.0, -4.0] * 30),
    ]
    out = run(  # through the console script, once; the other tests call it in process
        [
            "skd-fairseq-tables",
            *files,
            *lm,
            "--significance",
            "--plot",
            tmp_path / "curves.png",
            "--out",
            tmp_path / "table.md",
        ]
    ).stdout
    assert "| baseline | 21.00 ± 1.41 (n=2) | 40.00 ± 0.00 (n=2) |" in out
    assert "| skd-neighbours | 25.00 ± 1.41 (n=2) | 45.00 ± 0.00 (n=2) |" in out
    # Seed-matched paired bootstrap: the perfect system beats the worse one, p < 0.05, for each seed.
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| toy de-en test | skd-neighbours |") and line.split("|")[3].strip().isdigit()
    ]
    assert len(rows) == 2 and all(float(r.split("|")[-2]) < 0.05 for r in rows)
    assert "bootstrap signature: `nrefs:1|bs:1000" in out
    assert "| baseline | 90.02 (n=1) |" in out  # the language-model table
    # Perplexity bootstrapped over the scored samples: exp(4.5) against exp(3.5), clearly significant.
    row = next(
        line for line in out.splitlines() if line.startswith("| toy-lm test | skd-neighbours | 1 | 90.02 | 33.12 (± ")
    )
    assert float(row.split("|")[-2]) < 0.05
    assert "resampled units: toy-lm test: 60 samples, 600 tokens" in out
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "table.md").read_text() == out


@pytest.mark.slow
def test_archive_runs_and_tables_follow_a_run_reached_through_a_symlink(tmp_path):
    # A sweep run adopted as a table's seed: the table's run dir is a symlink at another depth
    # than the run itself, and the result file's paths are relative to where it physically lies.
    refs = [f"the cat number {i} sat on the mat ." for i in range(20)]
    data = tmp_path / "data" / "raw"
    data.mkdir(parents=True)
    (data / "test.en").write_text("\n".join(refs) + "\n")
    real = tmp_path / "sweep" / "baseline"
    real.mkdir(parents=True)
    (real / "hyp.test.txt").write_text("\n".join(refs) + "\n")
    (real / "train.log").write_text(
        "x | INFO | valid | epoch 001 | valid on 'valid' subset | loss 5 | nll_loss 4 | ppl 9 | wps 1 | num_updates 10\n"
    )
    (real / "train.json").write_text(
        json.dumps({"preset": "baseline", "method": "baseline", "seed": "1", "extra_flags": ""})
    )
    run(
        [
            *tool("score_translation"),
            "--hyp",
            real / "hyp.test.txt",
            "--ref",
            data / "test.en",
            "--out",
            real / "result.test.json",
            "--train-summary",
            real / "train.json",
            "--meta",
            "dataset=toy",
            "pair=de-en",
            "split=test",
        ]
    )
    adopted = tmp_path / "table" / "baseline" / "seed1"
    adopted.parent.mkdir(parents=True)
    adopted.symlink_to(real, target_is_directory=True)
    archive = tmp_path / "archive"
    run([*tool("archive_runs"), "--out", archive, adopted / "result.test.json"])
    assert (archive / "references" / "toy-de-en-test.en").read_text() == (data / "test.en").read_text()
    archived = archive / "baseline" / "seed1" / "result.test.json"
    assert (archived.parent / json.loads(archived.read_text())["hypotheses"]).exists()
    for result in (adopted / "result.test.json", archived):  # the table reads the texts either way
        out = make_tables(result, "--significance").stdout
        assert "| baseline | 100.00 (n=1) |" in out
    # Archiving the archive (a table rebuilt from committed runs) reproduces it file for file.
    again = tmp_path / "again"
    run([*tool("archive_runs"), "--out", again, archived])
    assert sorted(p.relative_to(again) for p in again.rglob("*")) == sorted(
        p.relative_to(archive) for p in archive.rglob("*")
    )
    assert (again / "baseline" / "seed1" / "result.test.json").read_text() == archived.read_text()


@pytest.mark.slow
def test_make_tables_test_over_seeds_and_training_metrics(tmp_path):
    refs = [f"the cat number {i} sat on the mat ." for i in range(10)]
    files = []
    for seed, (b, m) in enumerate([(20.0, 21.0), (22.0, 24.5), (21.0, 22.5)], 1):
        files.append(write_result(tmp_path / f"b{seed}", "baseline", seed, refs, refs, b, 40.0))
        path = write_result(tmp_path / f"m{seed}", "skd-neighbours", seed, refs, refs, m, 40.0 + seed)
        result = json.loads(path.read_text())
        result["metrics"]["valid_ppl"] = 6.0 + seed / 10
        path.write_text(json.dumps(result))
        with open(tmp_path / f"m{seed}" / "train.log", "a") as log:
            for epoch, (gold_q, tau) in enumerate([(0.75, 0.31), (0.75, 0.12)], 1):
                log.write(
                    f"x | INFO | train | epoch {epoch:03d} | loss 4.1 | skd_alpha 0.5 | skd_loss 3.2 | "
                    f"skd_gold_q {gold_q} | skd_tau {tau + seed / 100} | wps 1500 | num_updates {epoch * 10}\n"
                )
        files.append(path)
    out = make_tables(*files, "--significance", "--training-metrics").stdout
    # BLEU differences +1.0, +2.5, +1.5: mean 1.667, std 0.764, t = 3.780; with 2 degrees of
    # freedom the two-sided p of Student's t is 1 - |t| / sqrt(t^2 + 2) = 0.0634.
    row = next(line for line in out.splitlines() if line.startswith("| toy de-en test | skd-neighbours | BLEU |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[3:] == ["1, 2, 3", "+1.00, +2.50, +1.50", "+1.67 ± 0.76", "3.78", "0.063"]
    t = statistics.mean([1.0, 2.5, 1.5]) / (statistics.stdev([1.0, 2.5, 1.5]) / math.sqrt(3))
    assert float(cells[-1]) == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=5e-4)
    # chrF differs by exactly +1, +2, +3 and the baseline has no valid_ppl: no row for it.
    assert (
        "| toy de-en test | skd-neighbours | chrF | 1, 2, 3 | +1.00, +2.00, +3.00 | +2.00 ± 1.00 | 3.46 | 0.074 |"
        in out
    )
    assert "| perplexity | 1, 2, 3" not in out
    assert (
        "| skd-neighbours | 22.67 ± 1.76 (n=3) | 42.00 ± 1.00 (n=3) | 6.20 ± 0.10 (n=3) | 0.750 → 0.750 | 0.330 → 0.140 |"
        in out
    )
    assert "skd_gold_q, epoch 1 → last | skd_tau, epoch 1 → last |" in out


@pytest.mark.slow
def test_make_tables_puts_greedy_decoding_beside_beam_search(tmp_path):
    """evaluate-translation.sh --greedy writes result.test.greedy.json (decoding "greedy"): its own
    columns and tests, while the runs' validation perplexity stays one column."""
    refs = [f"the cat number {i} sat on the mat ." for i in range(10)]
    files = []
    for method, beam, greedy in (("baseline", 20.0, 18.0), ("seq-kd", 21.0, 20.5)):
        path = write_result(tmp_path / method, method, 1, refs, refs, beam, 40.0)
        result = json.loads(path.read_text())
        result["metrics"]["valid_ppl"] = 6.0
        path.write_text(json.dumps(dict(result, decoding="beam")))
        greedy_path = tmp_path / method / "result.test.greedy.json"
        result["metrics"]["bleu"] = greedy
        greedy_path.write_text(json.dumps(dict(result, decoding="greedy")))
        files += [path, greedy_path]
    out = make_tables(*files, "--significance").stdout
    header = next(line for line in out.splitlines() if line.startswith("| method |"))
    assert header.count("valid: perplexity") == 1
    assert "toy de-en test: BLEU | toy de-en test greedy: BLEU |" in header
    assert "| seq-kd | 21.00 (n=1) | 20.50 (n=1) |" in out
    assert "| toy de-en test greedy | seq-kd |" in out  # the bootstrap against the greedy baseline


@pytest.mark.slow
def test_make_tables_takes_the_cost_column_from_an_interleaved_benchmark(tmp_path):
    refs = [f"the cat number {i} sat on the mat ." for i in range(10)]
    files = [write_result(tmp_path / m, m, 1, refs, refs, 20.0, 40.0) for m in ("baseline", "word-kd", "tie-kd")]
    bench = tmp_path / "bench.json"
    variants = [
        {"variant": "baseline", "step_time_ratio": 1.0, "peak_memory_ratio": 1.0},
        {"variant": "word-kd", "step_time_ratio": 1.034, "peak_memory_ratio": 1.012},
        {"variant": "word-kd, refresh amortised (R = 50)", "step_time_ratio": 1.1, "peak_memory_ratio": 1.0},
    ]
    bench.write_text(json.dumps({"benchmark": "bench_train", "variants": variants}))
    out = make_tables(*files, "--cost-from", bench).stdout
    assert "| cost vs baseline (bench_train, interleaved): step time × / memory × |" in out
    assert "| word-kd | 20.00 (n=1) | 40.00 (n=1) | 1.034 / 1.012 |" in out
    assert "| tie-kd | 20.00 (n=1) | 40.00 (n=1) | - |" in out  # not measured there
    bench.write_text(json.dumps({"benchmark": "bench_train", "variants": [dict(variants[0], variant="other")]}))
    proc = make_tables(*files, "--cost-from", bench, check=False)
    assert proc.returncode == 1 and "measures other, none of the rows" in proc.stderr


@pytest.mark.slow
def test_make_tables_compares_rows_with_another_reference(tmp_path):
    refs = [f"the cat number {i} sat on the mat ." for i in range(40)]
    worse = [f"a cat number {i} sat on mat ." for i in range(40)]
    files = []
    # BLEU: baseline 20, 21, 22; ls-matched 23, 23, 24; skd 24, 25, 25 (perfect hypotheses).
    for seed, scores in enumerate([(20.0, 23.0, 24.0), (21.0, 23.0, 25.0), (22.0, 24.0, 25.0)], 1):
        for method, hyps, bleu in zip(("baseline", "ls-matched", "skd-neighbours"), (worse, worse, refs), scores):
            files.append(write_result(tmp_path / f"{method}{seed}", method, seed, hyps, refs, bleu, 40.0))
    out = make_tables(*files, "--significance", "--compare", "skd-neighbours:ls-matched").stdout
    against_baseline, against_matched = out.split("Paired bootstrap resampling against `ls-matched`")
    assert "Paired bootstrap resampling against `baseline`" in against_baseline
    assert "| toy de-en test | ls-matched | BLEU | 1, 2, 3 | +3.00, +2.00, +2.00 |" in against_baseline
    # Only the compared method is tested against the other reference, seed by seed and over seeds.
    assert "| benchmark | method | seed | ls-matched BLEU | method BLEU (± 95 % CI) | p |" in against_matched
    rows = [line for line in against_matched.splitlines() if line.startswith("| toy de-en test |")]
    assert {line.split("|")[2].strip() for line in rows} == {"skd-neighbours"}
    bootstrap = [r for r in rows if r.split("|")[3].strip().isdigit()]
    assert len(bootstrap) == 3 and all(float(r.split("|")[-2]) < 0.05 for r in bootstrap)
    assert (
        "Test over seeds against `ls-matched`: the difference of each seed's score to `ls-matched`'s" in against_matched
    )
    assert (
        "| toy de-en test | skd-neighbours | BLEU | 1, 2, 3 | +1.00, +2.00, +1.00 | +1.33 ± 0.58 |" in against_matched
    )
    # Bad pairs are named before any test runs.
    for pair, message in (
        ("skd-neighbours", "expected METHOD:REFERENCE"),
        ("skd-neighbours:skd-neighbours", "expected"),
        ("skd-random:ls-matched", "no results for 'skd-random'; the rows are: baseline, ls-matched"),
        ("skd-neighbours:baseline", "already tested against the baseline"),
    ):
        proc = make_tables(*files, "--significance", "--compare", pair, check=False)
        assert proc.returncode == 1 and message in proc.stderr, (pair, proc.stderr)
    proc = make_tables(*files, "--compare", "skd-neighbours:ls-matched", check=False)
    assert proc.returncode == 2 and "it needs --significance" in proc.stderr


def write_lm_result(run_dir, method, sample_logprobs, tokens_per_sample=10):
    """A language-model result whose samples each have tokens_per_sample tokens of the given mean log-probability."""
    run_dir.mkdir(parents=True)
    (run_dir / "scores.test.tsv").write_text(
        "id\ttokens\tlogprob\n"
        + "".join(f"{i}\t{tokens_per_sample}\t{lp * tokens_per_sample}\n" for i, lp in enumerate(sample_logprobs))
    )
    ppl = math.exp(-statistics.mean(sample_logprobs))
    result = {
        "dataset": "toy-lm",
        "split": "test",
        "scores": "scores.test.tsv",
        "metrics": {"ppl": round(ppl, 2)},
        "training": {"preset": method, "method": method, "seed": "1", "extra_flags": ""},
    }
    (run_dir / "result.test.json").write_text(json.dumps(result))
    return run_dir / "result.test.json"


@pytest.mark.slow
def test_make_tables_perplexity_bootstrap_needs_matching_scores(tmp_path):
    base = write_lm_result(tmp_path / "base", "baseline", [-4.0] * 20)
    other = write_lm_result(tmp_path / "other", "skd-neighbours", [-4.0] * 19)
    proc = make_tables(base, other, "--significance", check=False)
    assert proc.returncode == 1 and "scored different samples" in proc.stderr
    old = json.loads(other.read_text())
    del old["scores"]
    other.write_text(json.dumps(old))
    proc = make_tables(base, other, "--significance", check=False)
    assert (
        proc.returncode == 1
        and "no per-sample scores" in proc.stderr
        and "re-run scripts/evaluate-lm.sh" in proc.stderr
    )
    # Without --significance the table needs no scores.
    assert "| skd-neighbours | 54.60 (n=1) |" in make_tables(base, other).stdout


@pytest.mark.slow
def test_make_tables_tokenised_bleu_cost_column_and_the_bootstrap_tokenizer(tmp_path):
    refs = [f"the cat number {i} sat on the mat ." for i in range(40)]
    worse = [f"a cat number {i} sat on mat ." for i in range(40)]
    files = []
    for method, hyps, wall, memory in (("baseline", worse, 100.0, 1000.0), ("skd-neighbours", refs, 110.0, 1020.0)):
        path = write_result(tmp_path / method, method, 1, hyps, refs, 20.0, 40.0, [(100, 50.0)])
        result = json.loads(path.read_text())
        result["metrics"].update(
            bleu_signature="nrefs:1|case:lc|eff:no|tok:none|smooth:exp|version:2.6.0",
            bleu_tokenized=31.5,
            bleu_tokenized_kind="compound-split",
            bleu_tokenized_signature="nrefs:1|tok:none",
        )
        result["training"].update(fairseq_wall_s=wall, peak_rss_mib=memory)  # a result file of an older commit
        path.write_text(json.dumps(result))
        files.append(path)
    out = make_tables(*files, "--significance", "--cost").stdout
    assert (
        "| method | toy de-en test: BLEU | toy de-en test: chrF | toy de-en test: tokenised BLEU "
        "(compound-split) | cost vs baseline: time × / memory × |"
    ) in out
    assert "| skd-neighbours | 20.00 (n=1) | 40.00 (n=1) | 31.50 (n=1) | 1.100 / 1.020 |" in out
    assert "tokenised BLEU signature (on the tokenised hypotheses and references): `nrefs:1|tok:none`" in out
    # The table's tokenizer and casing, not sacrebleu's defaults (13a, mixed case).
    assert "|case:lc|" in out.split("bootstrap signature:")[1] and "|tok:none|" in out.split("bootstrap signature:")[1]


def test_make_tables_plots_the_model_perplexity_of_an_rdrop_log(tmp_path):
    # fairseq's R-Drop criterion logs twice the nll in validation (two equal copies of each
    # batch over one copy's tokens): its logged ppl is the square of the model's.
    path = write_result(tmp_path / "rdrop", "rdrop", 1, ["a"], ["a"], 30.0, 50.0, [(100, 36.0), (200, 25.0)])
    command = [
        "fairseq-train",
        "--criterion",
        "label_smoothed_cross_entropy_with_rdrop",
        "--rdrop-alpha",
        "5",
        "--rdrop-alpha",
        "1",
    ]
    result = {"training": {"command": command}}
    assert plots.logged_loss_factor(result) == 2
    assert plots.validation_curve(path.parent, plots.logged_loss_factor(result)) == {100: 6.0, 200: 5.0}
    assert plots.logged_loss_factor({"training": {"command": command + ["--rdrop-alpha", "0"]}}) == 1
    assert plots.logged_loss_factor({"training": {"command": command[:3]}}) == 1  # fairseq's default alpha 0
    assert (
        plots.logged_loss_factor({"training": {"command": ["fairseq-train", "--criterion", "label_smoothed_skd"]}}) == 1
    )
    assert plots.logged_loss_factor({}) == 1


@pytest.mark.slow
def test_make_tables_refuses_rows_that_mix_settings_or_repeat_a_seed_and_a_missing_baseline(tmp_path):
    refs = ["the cat sat on the mat ."] * 5
    base = write_result(tmp_path / "b1", "baseline", 1, refs, refs, 20.0, 40.0)
    one = write_result(tmp_path / "s1", "skd-neighbours", 1, refs, refs, 21.0, 40.0)
    other = write_result(tmp_path / "s2", "skd-neighbours", 2, refs, refs, 22.0, 40.0)
    result = json.loads(other.read_text())
    result["training"]["extra_flags"] = "--skd-alpha 0.3"
    other.write_text(json.dumps(result))
    proc = make_tables(base, one, other, check=False)
    assert proc.returncode == 1 and "'skd-neighbours' has runs with different settings: `skd-neighbours`" in proc.stderr
    assert "`skd-neighbours --skd-alpha 0.3`" in proc.stderr and "train.sh --method NAME" in proc.stderr
    proc = make_tables(base, one, one, check=False)
    assert proc.returncode == 1 and "two results for skd-neighbours seed 1 on toy de-en test" in proc.stderr
    for flag in ("--significance", "--cost"):
        proc = make_tables(one, flag, check=False)
        assert proc.returncode == 1 and "no results for the baseline 'baseline'" in proc.stderr, flag
    assert "| skd-neighbours | 21.00 (n=1) |" in make_tables(one).stdout


@pytest.mark.slow
def test_make_tables_takes_flags_spelled_otherwise_for_the_same_command_as_one_setting(tmp_path):
    refs = ["the cat sat on the mat ."] * 5
    train = [
        "fairseq-train",
        "data/bin",
        "--user-dir",
        "/a/skd_fairseq",
        "--arch",
        "transformer",
        "--share-all-embeddings",
        "--lr",
        "-1",
        "--criterion",
        "label_smoothed_skd",
        "--skd-alpha",
        "0.5",
    ]

    def result(name, seed, extra_flags, command):
        path = write_result(tmp_path / name, "skd-neighbours", seed, refs, refs, 20.0 + seed, 40.0)
        r = json.loads(path.read_text())
        r["training"].update(extra_flags=extra_flags, command=command)
        path.write_text(json.dumps(r))
        return path

    # Seed 2 was trained when the preset set alpha 0.3, with alpha 0.5 given after it: argparse
    # takes the last value, so it is the same setting as seed 1 (the seed and directories aside).
    one = result("s1", 1, "", train + ["--seed", "1", "--save-dir", "/runs/s1"])
    two = result(
        "s2",
        2,
        "--skd-alpha 0.5",
        train[:-1]
        + ["0.3", "--seed", "2", "--save-dir", "/other/s2", "--user-dir", "/b/skd_fairseq", "--skd-alpha", "0.5"],
    )
    out = make_tables(two, one, "--flags").stdout
    assert "| skd-neighbours | `skd-neighbours` | 21.50 ± 0.71 (n=2) |" in out
    assert "Same setting, other flags: `skd-neighbours` seed 2 ran as `skd-neighbours --skd-alpha 0.5`" in out
    assert "Same setting" not in make_tables(one).stdout
    # Any other option that differs, a switch left out, or a run without its command: two settings.
    for name, command in [
        ("lr", train + ["--seed", "2", "--lr", "1"]),
        ("switch", [t for t in train if t != "--share-all-embeddings"]),
        ("data", ["fairseq-train", "data/other"] + train[2:]),
        ("none", None),
    ]:
        other = result(name, 3, "--skd-alpha 0.5", command)
        proc = make_tables(one, other, check=False)
        assert proc.returncode == 1 and "'skd-neighbours' has runs with different settings" in proc.stderr, name
