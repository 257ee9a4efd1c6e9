"""reproduce.sh end to end on slices (translation, kd-multi30k, language model, adaptive softmax) and its
refusals before training; the sweep, the convergence rule, skd-fairseq-cut-run and the distilled targets."""

import json
import os
import re
import shutil

import pytest
import torch
from conftest import REPO, SCRIPTS, binarise_de_en, make_tables, run, tiny_config, tool

from skd_experiments.choose_epochs import choose_epoch, validation_curve


def reproduce(tmp_path, table, *args, **run_kwargs):
    """scripts/reproduce.sh TABLE ARGS, its runs under tmp_path/runs and its tables under tmp_path/results."""
    out = ["--out", tmp_path / "runs", "--results", tmp_path / "results"]
    return run(["bash", SCRIPTS / "reproduce.sh", table, *args, *out], **run_kwargs)


def small_slice(multi30k_bin, out, lines=300):
    """The first lines of the slice's training pairs, binarised with its dictionaries."""
    out.mkdir()
    for lang in ("de", "en"):
        with open(multi30k_bin / "spm" / f"train.{lang}") as f:
            (out / f"train.{lang}").write_text("".join(next(f) for _ in range(lines)))
    spm = multi30k_bin / "spm"
    binarise_de_en(out / "train", spm / "valid", spm / "test", multi30k_bin / "bin", out / "bin")
    (out / "bin" / ".done").touch()
    return out / "bin"


@pytest.mark.pipeline
def test_reproduce_translation_table_on_a_slice(multi30k_bin, tmp_path):
    config = tiny_config(tmp_path, multi30k_bin)
    # The config's own rows and extra columns, as configs/multi30k-de-en.sh sets them.
    with open(config, "a") as f:
        f.write(
            'TABLE_PRESETS="baseline skd-neighbours"\nTABLE_COLUMNS=(--cost --training-metrics)\n'
            'TABLE_COMPARISONS="baseline:skd-neighbours skd-neighbours:ls-matched"\n'
        )
    proc = reproduce(
        tmp_path, "multi30k", "--config", config, "--seeds", "1", env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    table = (tmp_path / "results" / "multi30k-de-en.md").read_text()
    assert table in proc.stdout
    assert "CPU only; threads per run: OMP_NUM_THREADS=1 (2 runs)." in table  # as the runs recorded it
    assert re.search(r"Training time of the 2 runs, summed: \d+\.\d h \(evaluation not included\)\.", table)
    assert 'Produced by `bash scripts/reproduce.sh multi30k --seeds "1" --presets "baseline skd-neighbours"' in table
    assert "| skd-neighbours | `skd-neighbours` |" in table and "Paired bootstrap resampling" in table
    header = next(line for line in table.splitlines() if line.startswith("| method |"))
    assert "cost vs baseline" in header and "skd_gold_q, epoch 1 → last" in header
    assert "![validation perplexity" in table and (tmp_path / "results" / "multi30k-de-en.png").exists()
    # The config's comparisons whose two rows the table has; the others are named as left out.
    assert "Paired bootstrap resampling against `skd-neighbours`" in table and "against `ls-matched`" not in table
    assert "the comparison skd-neighbours:ls-matched is left out of the table" in proc.stderr
    # The archived runs rebuild the same table and significance tests without the runs or the data.
    archived = sorted((tmp_path / "results" / "multi30k-de-en-runs").glob("*/seed*/result.test.json"))
    assert [p.parent.parent.name for p in archived] == ["baseline", "skd-neighbours"]
    rebuilt = make_tables(
        *archived, "--significance", "--flags", "--cost", "--training-metrics", "--compare", "baseline:skd-neighbours"
    ).stdout
    assert rebuilt.strip() in table
    # Finished runs are not redone.
    again = reproduce(tmp_path, "multi30k", "--config", config, "--seeds", "1")
    assert "=== [reproduce" not in again.stdout and "other settings" not in again.stderr
    # ... also after the config changed, but then the table says which runs it reused.
    with open(config, "a") as f:
        f.write("FAIRSEQ_ARGS+=(--max-update 9)\n")
    edited = reproduce(tmp_path, "multi30k", "--config", config, "--seeds", "1")
    assert "=== [reproduce" not in edited.stdout
    assert f"{tmp_path / 'runs' / 'baseline' / 'seed1'} finished with other settings" in edited.stderr
    assert (
        "Reused as finished, with other settings than the config and presets give now (see each train.json): "
        "baseline/seed1 skd-neighbours/seed1."
    ) in (tmp_path / "results" / "multi30k-de-en.md").read_text()


@pytest.mark.pipeline
def test_reproduce_kd_table_on_a_slice(multi30k_bin, tmp_path):
    data = small_slice(multi30k_bin, tmp_path / "slice", lines=200)
    text = tiny_config(tmp_path, multi30k_bin).read_text().replace("DATA=$DATA_DIR/bin", f"DATA={data}")
    student = tmp_path / "student.sh"
    student.write_text(text.replace("--max-update 8", "--max-update 4"))
    teacher = tmp_path / "teacher.sh"
    bench = tmp_path / "bench.json"  # a bench_train.py report of the rows: the cost column
    variants = [{"variant": "baseline", "step_time_ratio": 1.0, "peak_memory_ratio": 1.0}]
    variants.append({"variant": "seq-word-kd", "step_time_ratio": 1.042, "peak_memory_ratio": 1.013})
    bench.write_text(json.dumps({"benchmark": "bench_train", "variants": variants}))
    teacher.write_text(text + f"DISTILL_ARGS=(--beam 1 --max-len-b 5)\nKD_TABLE_COST_FROM={bench}\n")
    command = [
        "bash",
        SCRIPTS / "reproduce.sh",
        "kd-multi30k",
        "--config",
        student,
        "--teacher-config",
        teacher,
        "--seeds",
        "1",
        "--presets",
        "baseline seq-word-kd",
        "--out",
        tmp_path / "runs",
        "--results",
        tmp_path / "results",
    ]
    proc = run(command)
    table = (tmp_path / "results" / "kd-multi30k-de-en.md").read_text()
    assert table in proc.stdout
    assert table.index("Teacher (`") < table.index("| method |")
    assert "| seq-word-kd | `word-kd --data distilled/bin --teacher-cache distilled-cache (top 8)` |" in table
    assert "de-en test: BLEU | multi30k-slice de-en test greedy: BLEU |" in table
    assert "(3 runs)" in table and "Training time of the 3 runs" in table  # the teacher's and two rows'
    assert "| teacher | `baseline` |" in table  # the teacher's own row, beam and greedy
    assert "cost vs baseline (bench_train, interleaved): step time × / memory × |" in table
    assert re.search(r"\| seq-word-kd \| .* \| 1\.042 / 1\.013 \|", table)
    # The cost from the benchmark, not from the runs' wall times (which measure the machine's load).
    assert "cost vs baseline: time" not in table and "Training cost" not in table
    runs = tmp_path / "runs"
    assert json.loads((runs / "teacher" / "result.test.json").read_text())["updates"] == 8
    result = json.loads((runs / "seq-word-kd" / "seed1" / "result.test.json").read_text())
    assert result["method"] == "seq-word-kd" and result["seed"] == 1 and result["updates"] == 4
    assert (
        result["flags"] == "word-kd --data distilled/bin --teacher-cache distilled-cache (top 8)"
        and result["commit"]
        and result["evaluation_commit"]
    )
    assert result["wall_time_s"] > 0 and result["tokens_per_s"] > 0 and result["peak_memory_mib"] > 0
    # The distilled targets are the teacher's translations, in corpus order; valid/test keep references.
    distilled = runs / "distilled"
    hyps = {}
    for line in (distilled / "generate.train.txt").read_text().splitlines():
        if line.startswith("H-"):
            sid, _, text = line[2:].split("\t")
            hyps[int(sid)] = text
    assert (distilled / "train.en").read_text().splitlines() == [hyps[i] for i in range(200)]
    assert (distilled / "train.de").read_text() == (tmp_path / "slice" / "train.de").read_text()
    for name in ("valid.de-en.en.bin", "test.de-en.de.idx"):
        assert (distilled / "bin" / name).read_bytes() == (data / name).read_bytes()
    command_line = (runs / "seq-word-kd" / "seed1" / "command.txt").read_text()
    assert command_line.startswith(f"fairseq-train {runs / 'distilled' / 'bin'} ")
    # word-kd on the distilled data reads a cache of the teacher on that data, not the teacher.
    assert f"--kd-teacher-cache {runs / 'distilled-cache'}" in command_line
    assert "--kd-teacher-path" not in command_line
    manifest = json.loads((runs / "distilled-cache" / "manifest.json").read_text())
    assert manifest["teachers"][0]["path"] == str(runs / "teacher" / "checkpoint_best.pt")
    assert manifest["data"] == str(runs / "distilled" / "bin") and manifest["sentences"] == 200
    greedy = json.loads((runs / "baseline" / "seed1" / "result.test.greedy.json").read_text())
    assert greedy["decoding"] == "greedy" and greedy["generate_args"].endswith("--beam 1")
    again = run(command)
    assert "=== [reproduce" not in again.stdout and "translating" not in again.stdout
    proc = run(
        [
            "bash",
            SCRIPTS / "distill-sequence-level.sh",
            "--data",
            data,
            "--teacher",
            tmp_path / "none.pt",
            "-s",
            "de",
            "-t",
            "en",
            "--out",
            tmp_path / "x",
        ],
        check=False,
    )
    assert proc.returncode == 1 and "teacher checkpoint" in proc.stderr and "not found" in proc.stderr
    # Data whose target dictionary has the teacher's size but not its symbols: refused before translating.
    other = tmp_path / "other-dict"
    shutil.copytree(data, other)
    lines = (other / "dict.en.txt").read_text().splitlines(keepends=True)
    lines[0], lines[1] = lines[1], lines[0]
    (other / "dict.en.txt").write_text("".join(lines))
    (runs / "teacher" / "dict.en.txt").unlink(missing_ok=True)  # so the teacher's data dictionary is read
    proc = run(
        [
            "bash",
            SCRIPTS / "distill-sequence-level.sh",
            "--data",
            other,
            "--teacher",
            runs / "teacher" / "checkpoint_best.pt",
            "-s",
            "de",
            "-t",
            "en",
            "--out",
            tmp_path / "y",
        ],
        check=False,
    )
    assert proc.returncode == 1, proc.stdout
    assert "the teacher's target dictionary" in proc.stderr and "first at id 4" in proc.stderr
    assert not (tmp_path / "y" / "generate.train.txt").exists()


@pytest.mark.pipeline
def test_reproduce_language_model_table_on_a_slice(wikitext_bin, tmp_path):
    config = tmp_path / "tiny-lm.sh"
    config.write_text(f"""
DATASET=wikitext2-sample
DATA_DIR={wikitext_bin}
PREPARE=(scripts/prepare-wikitext.sh -o {wikitext_bin})
DATA=$DATA_DIR/bin
FAIRSEQ_ARGS=(--task language_modeling --arch transformer_lm --share-decoder-input-output-embed
  --decoder-layers 1 --decoder-embed-dim 32 --decoder-ffn-embed-dim 64 --decoder-attention-heads 2
  --tokens-per-sample 64 --sample-break-mode none --optimizer adam --lr 2e-3 --max-tokens 1024
  --max-update 6 --save-interval-updates 3 --no-epoch-checkpoints --num-workers 0)
EVAL_LM_ARGS=(--max-tokens 2048 --tokens-per-sample 64 --context-window 32)
AVERAGE_LAST=2
""")
    reproduce(tmp_path, "multi30k-lm", "--config", config, "--seeds", "2", "--presets", "baseline skd-predicted")
    result = json.loads((tmp_path / "runs" / "skd-predicted" / "seed2" / "result.test.json").read_text())
    assert result["metrics"]["ppl"] > 1 and result["metrics"]["tokens"] > 1000
    assert result["checkpoint"] == "average of last 2"  # the config's AVERAGE_LAST: updates 3 and 6
    assert "--label-smoothing 0" in result["training"]["extra_flags"]
    scores = (tmp_path / "runs" / "skd-predicted" / "seed2" / result["scores"]).read_text().splitlines()
    assert scores[0] == "id\ttokens\tlogprob" and sum(int(line.split("\t")[1]) for line in scores[1:]) > 1000
    table = (tmp_path / "results" / "multi30k-en-lm.md").read_text()
    assert "perplexity" in table and "| skd-predicted |" in table
    assert "| wikitext2-sample test | skd-predicted | 2 |" in table and "method perplexity (± 95 % CI)" in table
    # The archive holds the per-sample scores, so the significance test is rebuilt from it.
    archived = sorted((tmp_path / "results" / "multi30k-en-lm-runs").glob("*/seed*/result.test.json"))
    rebuilt = make_tables(*archived, "--significance", "--flags").stdout
    assert rebuilt.strip() in table
    # A result evaluated before the scores existed is evaluated again, not retrained.
    run_result = tmp_path / "runs" / "baseline" / "seed2" / "result.test.json"
    fresh = json.loads(run_result.read_text())
    del fresh["scores"]
    run_result.write_text(json.dumps(fresh))
    again = reproduce(
        tmp_path, "multi30k-lm", "--config", config, "--seeds", "2", "--presets", "baseline skd-predicted"
    )
    assert "baseline, seed 2: evaluating again for per-sample scores" in again.stdout
    assert "fairseq-train" not in again.stdout and json.loads(run_result.read_text())["scores"] == "scores.test.tsv"


@pytest.mark.pipeline
def test_reproduce_adaptive_softmax_recipe_on_a_slice(wikitext_bin, tmp_path):
    """configs/wikitext103.sh's presets (adaptive_loss baseline, SKD without label smoothing) at a tiny size."""
    vocab = sum(1 for _ in open(wikitext_bin / "bin" / "dict.txt")) + 4
    cutoff = f"{vocab // 4},{vocab // 2}"
    config = tmp_path / "tiny-wiki103.sh"
    config.write_text(f"""
. {REPO}/configs/wikitext103.sh
DATASET=wikitext2-sample
DATA_DIR={wikitext_bin}
PREPARE=(scripts/prepare-wikitext.sh -o {wikitext_bin})
DATA=$DATA_DIR/bin
FAIRSEQ_ARGS=(--task language_modeling --arch transformer_lm_wiki103 --decoder-layers 1 --decoder-embed-dim 32
  --decoder-input-dim 32 --decoder-output-dim 32 --decoder-ffn-embed-dim 64 --decoder-attention-heads 2
  --adaptive-input-cutoff {cutoff} --adaptive-softmax-cutoff {cutoff} --tokens-per-sample 64 --sample-break-mode none
  --optimizer adam --lr 2e-3 --max-tokens 1024 --max-update 6 --no-epoch-checkpoints --num-workers 0
  --ddp-backend legacy_ddp)
EVAL_LM_ARGS=(--max-tokens 2048 --tokens-per-sample 64 --context-window 32)
""")
    reproduce(tmp_path, "wikitext103", "--config", config, "--seeds", "1", "--presets", "baseline skd-neighbours")
    for preset, criterion in (("baseline", "adaptive_loss"), ("skd-neighbours", "label_smoothed_skd")):
        result = json.loads((tmp_path / "runs" / preset / "seed1" / "result.test.json").read_text())
        command = " ".join(result["training"]["command"])
        assert f"--criterion {criterion}" in command and "--adaptive-softmax-cutoff" in command
        assert result["metrics"]["ppl"] > 1
    assert "--label-smoothing 0" in command  # SKD's data term is adaptive_loss's cross-entropy
    table = (tmp_path / "results" / "wikitext103.md").read_text()
    assert "| skd-neighbours |" in table and "| wikitext2-sample test | skd-neighbours | 1 |" in table


@pytest.mark.slow
def test_reproduce_rejects_unknown_tables():
    proc = run(["bash", SCRIPTS / "reproduce.sh", "wmt99"], check=False)
    assert proc.returncode == 1 and "unknown table 'wmt99'" in proc.stderr


@pytest.mark.slow
def test_reproduce_rejects_a_malformed_comparison_before_training(multi30k_bin, tmp_path):
    config = tiny_config(tmp_path, multi30k_bin)
    with open(config, "a") as f:
        f.write('TABLE_COMPARISONS="skd-neighbours-ls-matched"\n')
    proc = reproduce(tmp_path, "multi30k", "--config", config, "--seeds", "1", check=False)
    assert proc.returncode == 1 and "'skd-neighbours-ls-matched' is not METHOD:REFERENCE" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "table, presets, message",
    [
        ("multi30k", "baseline skd-neighbour", "unknown preset 'skd-neighbour' in --presets (one of: baseline"),
        (
            "multi30k",
            "baseline word-kd",
            "preset 'word-kd' distils from a teacher: it is a row of 'reproduce.sh kd-multi30k'",
        ),
        ("multi30k", "skd-neighbours skd-random", "has no baseline: the table tests every row against it"),
        ("multi30k-lm", "baseline", "is not a language-model config (no EVAL_LM_ARGS)"),
    ],
)
def test_reproduce_checks_rows_and_config_before_training(multi30k_bin, tmp_path, table, presets, message):
    config = tiny_config(tmp_path, multi30k_bin)
    proc = reproduce(tmp_path, table, "--config", config, "--seeds", "1", "--presets", presets, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_reproduce_refuses_to_read_runs_from_the_archive_it_rewrites(tmp_path):
    archive = tmp_path / "results" / "multi30k-de-en-runs"
    (archive / "baseline" / "seed1").mkdir(parents=True)
    (archive / "baseline" / "seed1" / "result.test.json").write_text("{}")
    proc = run(
        ["bash", SCRIPTS / "reproduce.sh", "multi30k", "--out", archive, "--results", tmp_path / "results"], check=False
    )
    assert proc.returncode == 1 and "lies in the archive" in proc.stderr and "cp -r" in proc.stderr
    assert (archive / "baseline" / "seed1" / "result.test.json").exists()


@pytest.mark.slow
def test_distilled_targets_restores_order_and_checks_every_sentence(tmp_path):
    out = tmp_path / "gen.txt"
    out.write_text(
        "S-1\tb c\nT-1\tref one\nH-1\t-0.5\thyp one\nD-1\t-0.5\thyp one\n"
        "S-0\ta\nT-0\tref zero\nH-0\t-0.2\thyp zero\nS-2\td\nT-2\tref two\nH-2\t-0.9\t\n"
    )
    distill = [
        *tool("distilled_targets"),
        "--generate-output",
        out,
        "-s",
        "de",
        "-t",
        "en",
        "--prefix",
        tmp_path / "train",
    ]
    proc = run([*distill, "--sentences", "3"], check=False)
    assert proc.returncode != 0 and "1 empty hypotheses (first ids [2])" in proc.stderr
    proc = run([*distill, "--sentences", "3", "--on-empty", "reference", "--summary", tmp_path / "s.json"])
    assert (tmp_path / "train.de").read_text() == "a\nb c\nd\n"
    assert (tmp_path / "train.en").read_text() == "hyp zero\nhyp one\nref two\n"
    assert json.loads((tmp_path / "s.json").read_text())["empty_replaced_by_reference"] == 1
    proc = run([*distill, "--sentences", "4", "--on-empty", "reference"], check=False)
    assert proc.returncode != 0 and "3 hypotheses for 4 sentences (1 missing, first [3]" in proc.stderr


@pytest.mark.slow
def test_choose_epochs_applies_the_convergence_rule(tmp_path):
    losses = [8.0, 6.0, 5.0, 4.5, 4.3, 4.2, 4.15, 4.12, 4.10, 4.09, 4.085, 4.08]
    log = tmp_path / "train.log"
    log.write_text(
        "".join(
            f"x | INFO | valid | epoch {e:03d} | valid on 'valid' subset | loss {loss} | nll_loss 3 | ppl 9.5 | wps 1\n"
            for e, loss in enumerate(losses, 1)
        )
    )
    curve = validation_curve(open(log))
    assert curve[3] == (5.0, 9.5)
    # Epoch 7: 4.15 -> 4.09 over 3 epochs is 1.45 %; epoch 8: 4.12 -> 4.085 is 0.85 % < 1 %.
    assert choose_epoch(curve) == 8
    assert run([*tool("choose_epochs"), log]).stdout.strip() == "8"
    md = run([*tool("choose_epochs"), log, "--markdown"]).stdout
    assert "| 8 **chosen** | 4.120 | 9.50 | 0.85 % |" in md
    # A curve that still improves needs the cap (or more epochs to decide).
    assert choose_epoch({e: (100.0 - 5 * e, 1.0) for e in range(1, 11)}, cap=10) == 10
    for curve, message in (
        ({e: (100.0 - 5 * e, 1.0) for e in range(1, 9)}, "stops at epoch 8"),
        ({1: (5.0, 1.0), 3: (4.0, 1.0), 4: (3.0, 1.0), 5: (2, 1.0)}, "epoch 2 has no validation"),
    ):
        with pytest.raises(ValueError, match=message):
            choose_epoch(curve, cap=10)


@pytest.mark.pipeline
def test_cut_run_gives_the_run_that_stopped_at_that_epoch(multi30k_bin, tmp_path):
    data = small_slice(multi30k_bin, tmp_path / "slice", lines=150)
    text = tiny_config(tmp_path, multi30k_bin).read_text().replace("DATA=$DATA_DIR/bin", f"DATA={data}")
    config = tmp_path / "epochs.sh"
    config.write_text(
        text.replace(
            "--max-update 8\n  --save-interval-updates 4 --keep-interval-updates 2 --no-epoch-checkpoints",
            "--max-epoch 3 --dropout 0.1",
        )
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    long, short = tmp_path / "long", tmp_path / "short"

    def train(save_dir, *flags):
        run(
            ["bash", SCRIPTS / "train.sh", config, "--criterion-preset", "baseline", "--save-dir", save_dir, *flags],
            env=env,
        )

    train(long)
    train(short, "--max-epoch", "2")
    out = run([*tool("cut_run"), long, "--epoch", "2"]).stdout
    assert "ends at epoch 2" in out
    assert not (long / "checkpoint3.pt").exists() and (long / "train.full.log").exists()
    from skd_fairseq.checkpoints import allow_fairseq_checkpoints

    allow_fairseq_checkpoints()
    cut_model = torch.load(long / "checkpoint_last.pt", map_location="cpu")["model"]
    want = torch.load(short / "checkpoint_last.pt", map_location="cpu")["model"]
    assert all(torch.equal(cut_model[k], want[k]) for k in want)  # the run --max-epoch 2 trains
    cut_summary, short_summary = (json.loads((d / "train.json").read_text()) for d in (long, short))
    assert cut_summary["updates"] == short_summary["updates"] and cut_summary["cut_at_epoch"] == 2
    assert "epoch 003" not in (long / "train.log").read_text()
    # train.sh with --max-epoch 2 finds nothing left to train; the averaging takes epochs 1 and 2.
    train(long, "--max-epoch", "2")
    assert json.loads((long / "train.json").read_text())["updates"] == short_summary["updates"]
    averaged = run(
        [*tool("average_checkpoints"), "--run-dir", long, "--last", "2", "--output", tmp_path / "avg.pt"]
    ).stdout
    assert averaged.split() == ["averaging", str(long / "checkpoint1.pt"), str(long / "checkpoint2.pt")]
    proc = run([*tool("cut_run"), long, "--epoch", "3"], check=False)
    assert proc.returncode == 1 and "checkpoint3.pt not found" in proc.stderr


@pytest.mark.pipeline
def test_sweep_scores_the_validation_split_with_training_metrics(multi30k_bin, tmp_path):
    config = tiny_config(tmp_path, multi30k_bin)
    proc = run(
        [
            "bash",
            SCRIPTS / "sweep.sh",
            config,
            "--out",
            tmp_path / "sweep",
            "--seed",
            "2",
            "--table",
            tmp_path / "results" / "toy-sweep.md",
            "--variant",
            "base=baseline",
            "--variant",
            "rnd-rho0.8=skd-random --skd-gold-mass 0.8",
        ]
    )
    table = (tmp_path / "results" / "toy-sweep.md").read_text()
    archived = sorted((tmp_path / "results" / "toy-sweep-runs").glob("*/seed2/result.valid.json"))
    assert [p.parent.parent.name for p in archived] == ["base", "rnd-rho0.8"]
    assert table in proc.stdout and "scored on the validation split only (checkpoint_best.pt)" in table
    assert (
        "| method | settings | multi30k-slice de-en valid: BLEU | multi30k-slice de-en valid: chrF | "
        "multi30k-slice de-en valid: perplexity | skd_gold_q, epoch 1 → last | skd_tau, epoch 1 → last |"
    ) in table
    row = next(line for line in table.splitlines() if line.startswith("| rnd-rho0.8 |"))
    assert "`skd-random --skd-gold-mass 0.8`" in row and "| 0.800 → 0.800 |" in row
    assert not (tmp_path / "sweep" / "base" / "result.test.json").exists()  # the test split is never touched
