"""The shell and Python scripts on small inputs: errors, resumption, and the demo pipeline end to end."""

import gzip
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

import pytest
import torch
from conftest import REPO, prepare_multi30k_slice, run, tiny_config, tool

from skd_experiments import fairseq_log, plots, run_and_measure, score_translation
from skd_experiments.choose_epochs import choose_epoch, validation_curve

SCRIPTS = REPO / "scripts"


def reproduce(tmp_path, table, *args, **run_kwargs):
    """scripts/reproduce.sh TABLE ARGS, its runs under tmp_path/runs and its tables under tmp_path/results."""
    out = ["--out", tmp_path / "runs", "--results", tmp_path / "results"]
    return run(["bash", SCRIPTS / "reproduce.sh", table, *args, *out], **run_kwargs)


def write_gz(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "prepare-multi30k.sh",
        "prepare-wikitext.sh",
        "prepare-iwslt14-de-en.sh",
        "prepare-wmt14-en-de.sh",
        "prepare-wikitext-103.sh",
        "train.sh",
        "train-to-convergence.sh",
        "evaluate-translation.sh",
        "evaluate-lm.sh",
        "sweep.sh",
        "reproduce.sh",
        "demo.sh",
        "setup-env.sh",
        "distill-sequence-level.sh",
        "test.sh",
    ],
)
def test_scripts_print_usage(script):
    out = run(["bash", SCRIPTS / script, "-h"]).stdout
    assert out.startswith("Usage:")


@pytest.mark.slow
def test_train_usage_lists_every_preset():
    out = run(["bash", SCRIPTS / "train.sh", "-h"]).stdout
    presets = run(["bash", "-c", f". {REPO / 'configs' / 'presets.sh'}; echo $PRESETS"]).stdout.split()
    assert len(presets) > 5 and all(f" {p}," in out or f" {p}\n" in out for p in presets)


@pytest.mark.slow
@pytest.mark.parametrize("script", ["evaluate-translation.sh", "evaluate-lm.sh"])
def test_evaluation_scripts_reject_bad_arguments_before_any_work(script, tmp_path):
    config = tmp_path / "config.sh"
    config.write_text("DATA=/nonexistent\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for args, status, message in (
        ([config, "--run-dir", run_dir, "--bogus"], 2, "unknown option '--bogus'"),
        ([tmp_path / "missing.sh", "--run-dir", run_dir], 1, "missing.sh' not found"),
        ([config], 1, "give an existing --run-dir"),
        ([config, "--run-dir", tmp_path / "nowhere"], 1, "give an existing --run-dir"),
        ([config, "--run-dir", run_dir, "--split", "train"], 1, "--split must be valid or test, got 'train'"),
        (
            [config, "--run-dir", run_dir, "--checkpoint", "last", "--average-last", "3"],
            1,
            "--checkpoint last and --average-last 3 both choose the scored model: give one",
        ),
    ):
        proc = run(["bash", SCRIPTS / script, *args], check=False)
        assert proc.returncode == status, proc.stderr
        assert proc.stderr.startswith(f"{script[:-3]}: ") and message in proc.stderr


@pytest.mark.slow
def test_an_explicit_checkpoint_wins_over_the_configs_averaging(tmp_path):
    config = tmp_path / "config.sh"
    config.write_text("DATA=/nonexistent\nAVERAGE_LAST=5\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = run(["bash", SCRIPTS / "evaluate-lm.sh", config, "--run-dir", run_dir], check=False)
    assert proc.returncode == 1 and "could not average the last 5 checkpoints" in proc.stderr
    proc = run(["bash", SCRIPTS / "evaluate-lm.sh", config, "--run-dir", run_dir, "--checkpoint", "last"], check=False)
    assert proc.returncode == 1 and f"missing {run_dir}/checkpoint_last.pt" in proc.stderr


@pytest.mark.slow
def test_scripts_find_the_project_environment_without_activation(tmp_path):
    # subprocess.run, not run(): that one puts the venv on PATH itself.
    venv = os.path.dirname(os.path.dirname(sys.executable))
    probe = f'. {SCRIPTS}/device.sh; command -v python; echo "device: ${{device[*]}}"'
    out = subprocess.run(
        ["/bin/bash", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "SKD_VENV": venv, "HOME": str(tmp_path)},
    ).stdout
    assert out.splitlines()[0] == os.path.join(venv, "bin", "python")
    assert out.splitlines()[1] == "device: " + ("" if torch.cuda.is_available() else "--cpu")
    # No environment with torch: a clear error, not a silent --cpu.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 1\n")
    (fake / "python").chmod(0o755)
    proc = subprocess.run(
        ["/bin/bash", "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": f"{fake}:/usr/bin:/bin", "SKD_VENV": str(tmp_path / "none"), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 1 and "cannot import torch: run 'bash scripts/setup-env.sh'" in proc.stderr
    # A script run by another reuses its caller's answer for the same python (exported), not another's.
    reuse = f'{probe}; echo "probe: $SKD_DEVICE_PROBE"; . {SCRIPTS}/device.sh; echo "device: ${{device[*]}}"'
    python = os.path.join(venv, "bin", "python")
    for given, expected in (
        (f"{python}=1", ""),
        ("/elsewhere/bin/python=1", "--cpu" * (not torch.cuda.is_available())),
    ):
        out = subprocess.run(
            ["/bin/bash", "-c", reuse],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", "SKD_VENV": venv, "HOME": str(tmp_path), "SKD_DEVICE_PROBE": given},
        ).stdout.splitlines()
        assert out[1] == f"device: {expected}" and out[3] == f"device: {expected}"
        assert out[2] == f"probe: {python}={int(expected == '')}"


@pytest.mark.slow
def test_train_lists_the_configs_presets_and_which_need_a_teacher(multi30k_bin, tmp_path):
    listed = run(["bash", SCRIPTS / "train.sh", tiny_config(tmp_path, multi30k_bin), "--criterion-preset", "--list"])
    lines = listed.stdout.splitlines()
    assert "baseline" in lines and "skd-neighbours" in lines and "word-kd teacher" in lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_prepare_multi30k_rejects_missing_and_truncated_files(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    proc = run(["bash", SCRIPTS / "prepare-multi30k.sh", "-r", raw, "-o", tmp_path / "out"], check=False)
    assert proc.returncode == 1 and "missing" in proc.stderr and "train.de.gz" in proc.stderr
    for split, n in (("train", 29000), ("val", 1014), ("test_2016_flickr", 1000)):
        for lang in ("de", "en"):
            write_gz(raw / f"{split}.{lang}.gz", ["x"] * (n - (split == "val" and lang == "en")))
    proc = run(["bash", SCRIPTS / "prepare-multi30k.sh", "-r", raw, "-o", tmp_path / "out"], check=False)
    assert proc.returncode == 1
    assert "val.en.gz has 1013 lines, expected 1014" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (["-s", "xx"], "unsupported language 'xx'"),
        (["-t", "de"], "source and target are both 'de'"),
        (["--vocab-size", "0"], "--vocab-size must be a positive integer"),
        (["--train-lines", "ten"], "--train-lines must be a positive integer"),
        (["--bogus"], "unknown option '--bogus'"),
    ],
)
def test_prepare_multi30k_rejects_bad_options(tmp_path, flags, message):
    proc = run(["bash", SCRIPTS / "prepare-multi30k.sh", "-r", tmp_path, *flags], check=False)
    assert proc.returncode != 0 and message in proc.stderr


@pytest.mark.slow
def test_prepare_multi30k_resumes_and_refuses_other_options(multi30k_bin):
    args = prepare_multi30k_slice(multi30k_bin)
    before = (multi30k_bin / "bin" / "train.de-en.en.bin").stat().st_mtime_ns
    out = run(args).stdout
    assert "fairseq-preprocess" not in out and "ready" in out
    assert (multi30k_bin / "bin" / "train.de-en.en.bin").stat().st_mtime_ns == before
    for split, n in (("train", 2000), ("valid", 100), ("test", 100)):
        for lang in ("de", "en"):
            assert sum(1 for _ in open(multi30k_bin / "raw" / f"{split}.{lang}")) == n
    proc = run(args[:-1] + ["2000"], check=False)
    assert proc.returncode == 1 and "was prepared with other options" in proc.stderr


@pytest.mark.slow
def test_prepare_wikitext_checks_its_input(tmp_path):
    proc = run(["bash", SCRIPTS / "prepare-wikitext.sh", "-r", tmp_path, "-o", tmp_path / "o"], check=False)
    assert proc.returncode == 1 and "missing or empty" in proc.stderr and "wiki.train.tokens" in proc.stderr
    for name in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
        (tmp_path / name).write_text("just some text\nwithout headings\n")
    proc = run(["bash", SCRIPTS / "prepare-wikitext.sh", "-r", tmp_path, "-o", tmp_path / "o"], check=False)
    assert proc.returncode == 1 and "not WikiText format" in proc.stderr


def test_score_translation_refuses_a_partial_output(tmp_path):
    metrics = score_translation.score(["a cat sits on the mat ."] * 3, ["a cat sits on the mat ."] * 3)
    assert metrics["bleu"] == 100.0 and metrics["sentences"] == 3
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    with pytest.raises(SystemExit, match="2 hypotheses for 3 references"):
        score_translation.score(["a", "b"], ["a", "b", "c"])


@pytest.mark.slow
def test_average_checkpoints_averages_the_weights(tmp_path):
    for i, value in enumerate((1.0, 2.0, 6.0)):
        torch.save(
            {"model": {"w": torch.full((2, 2), value), "n": torch.tensor([i])}, "extra": i}, tmp_path / f"c{i}.pt"
        )
    run(
        [
            *tool("average_checkpoints"),
            "--inputs",
            *(tmp_path / f"c{i}.pt" for i in range(3)),
            "--output",
            tmp_path / "avg.pt",
        ]
    )
    avg = torch.load(tmp_path / "avg.pt")
    assert torch.equal(avg["model"]["w"], torch.full((2, 2), 3.0)) and avg["extra"] == 2
    assert avg["model"]["n"].dtype == torch.long


def test_run_and_measure_summarises_a_fairseq_log(tmp_path):
    log = "\n".join(
        [
            "x | INFO | train_inner | epoch 001:  50 / 90 loss=9.1, wps=1500.5, ups=0.5, num_updates=50, lr=1e-4, train_wall=48, wall=100",
            "x | INFO | train_inner | epoch 001: 100 / 90 loss=8.1, wps=1700.5, ups=0.5, num_updates=100, lr=1e-4, train_wall=49, wall=200",
            "x | INFO | train | epoch 001 | loss 8.5 | wps 1600 | ups 0.5 | num_updates 120 | lr 1e-4 | train_wall 117 | wall 240",
        ]
    )
    assert run_and_measure.fairseq_stats(log) == {"updates": 120, "fairseq_wall_s": 240.0, "tokens_per_s": 1600.5}
    # Killed at update 150 and resumed from the epoch-1 checkpoint (update 120): fairseq's wall
    # clock restarts, and the 120 -> 150 stretch was trained again, so it counts once.
    resumed = "\n".join(
        [
            log,
            "x | INFO | train_inner | epoch 002:  30 / 90 loss=8.0, wps=1500, ups=0.5, num_updates=150, lr=1e-4, train_wall=29, wall=300",
            "x | INFO | fairseq.trainer | Loaded checkpoint /r/checkpoint_last.pt (epoch 2 @ 120 updates)",
            "x | INFO | train_inner | epoch 002:  30 / 90 loss=8.0, wps=1500, ups=0.5, num_updates=150, lr=1e-4, train_wall=29, wall=70",
            "x | INFO | train | epoch 002 | loss 8.0 | wps 1500 | ups 0.5 | num_updates 240 | lr 1e-4 | wall 250",
        ]
    )
    assert run_and_measure.fairseq_stats(resumed) == {"updates": 240, "fairseq_wall_s": 490.0, "tokens_per_s": 1500.25}
    # A run killed mid-epoch ends with a train_inner line: its wall clock, not the interval's train_wall.
    killed = "\n".join(resumed.splitlines()[:4])
    assert run_and_measure.fairseq_stats(killed) == {"updates": 150, "fairseq_wall_s": 300.0, "tokens_per_s": 1500.5}


@pytest.mark.slow
def test_run_and_measure_adds_up_a_resumed_run(tmp_path):
    summary = tmp_path / "train.json"
    command = [
        *tool("run_and_measure"),
        "--log",
        tmp_path / "train.log",
        "--summary",
        summary,
        "--meta",
        "seed=3",
        "--",
        sys.executable,
        "-c",
        "print('fairseq says hello')",
    ]
    run(command)
    first = json.loads(summary.read_text())
    run(command)
    second = json.loads(summary.read_text())
    assert (first["invocations"], second["invocations"]) == (1, 2) and second["seed"] == "3"
    assert second["all_invocations_wall_s"] >= first["invocation_wall_s"] + second["invocation_wall_s"] - 0.2
    assert second["peak_rss_mib"] >= first["peak_rss_mib"] > 0
    assert second["cuda_peak_mib"] is None  # no GPU process reported
    assert (second["peak_memory_mib"], second["peak_memory_kind"]) == (second["peak_rss_mib"], "host resident set")
    assert (tmp_path / "train.log").read_text().count("fairseq says hello") == 2


@pytest.mark.slow
def test_run_and_measure_keeps_a_lost_peak_unknown_and_the_runs_notes(tmp_path):
    # A cut run whose earlier peak memory was lost: resuming it (nothing left to train) must not
    # report the resumption's small peak as the run's, and keeps what cut_run.py wrote.
    summary = tmp_path / "train.json"
    summary.write_text(
        json.dumps(
            {
                "invocations": 1,
                "peak_rss_mib": None,
                "peak_memory_mib": None,
                "note": "peak memory not recorded",
                "cut_at_epoch": 18,
            }
        )
    )
    run(
        [
            *tool("run_and_measure"),
            "--log",
            tmp_path / "train.log",
            "--summary",
            summary,
            "--meta",
            "method=baseline",
            "--",
            sys.executable,
            "-c",
            "print('done training')",
        ],
        env=dict(os.environ, OMP_NUM_THREADS="3"),
    )
    after = json.loads(summary.read_text())
    assert after["omp_num_threads"] == "3"  # the threads it ran with
    assert after["peak_rss_mib"] is None and after["peak_memory_mib"] is None and after["invocations"] == 2
    assert (after["note"], after["cut_at_epoch"], after["method"]) == ("peak memory not recorded", 18, "baseline")


@pytest.mark.slow
def test_the_plugin_reports_its_cuda_peak_when_it_exits(tmp_path, monkeypatch):
    import skd_fairseq.cuda_peak as cuda_peak
    from skd_fairseq import CUDA_PEAK_ENV

    # A process that "used CUDA" (torch.cuda faked: no GPU here) and loads the plugin, as fairseq-train does.
    fake = (
        "import torch\n"
        "torch.cuda.is_available = lambda: True\n"
        "torch.cuda.is_initialized = lambda: True\n"
        "torch.cuda.current_device = lambda: 0\n"
        "torch.cuda.max_memory_allocated = lambda device=None: 3 << 20\n"
        "import skd_fairseq\n"
    )
    peak_file = tmp_path / "peaks"
    env = dict(os.environ, **{CUDA_PEAK_ENV: str(peak_file)})
    subprocess.run([sys.executable, "-c", fake], check=True, env=env, cwd=REPO)
    subprocess.run([sys.executable, "-c", fake.replace("3 << 20", "5 << 20")], check=True, env=env, cwd=REPO)
    assert run_and_measure.read_cuda_peak_mib(str(peak_file)) == 5.0  # the largest process
    # A process that never used CUDA writes nothing.
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    cuda_peak.report(str(peak_file))
    assert len(peak_file.read_text().splitlines()) == 2
    # Opt-in: without the variable (every run that no measuring tool started) the plugin loads no hook.
    env.pop(CUDA_PEAK_ENV)
    probe = "import sys, skd_fairseq; print('skd_fairseq.cuda_peak' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True)
    assert loaded.stdout.strip() == "False"


def small_slice(multi30k_bin, out, lines=300):
    """The first lines of the slice's training pairs, binarised with its dictionaries."""
    out.mkdir()
    for lang in ("de", "en"):
        with open(multi30k_bin / "spm" / f"train.{lang}") as f:
            (out / f"train.{lang}").write_text("".join(next(f) for _ in range(lines)))
    run(
        [
            "fairseq-preprocess",
            "-s",
            "de",
            "-t",
            "en",
            "--trainpref",
            out / "train",
            "--validpref",
            multi30k_bin / "spm" / "valid",
            "--testpref",
            multi30k_bin / "spm" / "test",
            "--srcdict",
            multi30k_bin / "bin" / "dict.de.txt",
            "--tgtdict",
            multi30k_bin / "bin" / "dict.en.txt",
            "--destdir",
            out / "bin",
            "--workers",
            "1",
        ]
    )
    (out / "bin" / ".done").touch()
    return out / "bin"


@pytest.mark.pipeline
def test_demo_pipeline_end_to_end_on_a_slice(multi30k_bin, tmp_path):
    config = tiny_config(tmp_path, multi30k_bin)
    out = tmp_path / "demo"
    env = dict(os.environ, SKD_VENV=sys.prefix)  # the environment running the tests
    demo = ["bash", SCRIPTS / "demo.sh", "--config", config, "--out", out, "--max-update", "6", "--layers", "1"]
    demo += ["--dim", "48", "--seeds", "3"]
    proc = run([*demo, "--presets", "baseline skd-predicted"], env=env)
    table = proc.stdout[proc.stdout.index("| method |") :]
    assert (out / "curves.png").exists() and "validation curves:" in proc.stdout
    # One progress line per model (printed once at the end when not on a terminal), no fairseq log.
    assert "baseline seed 3: update 6/6 | loss " in proc.stdout and " tok/s" in proc.stdout
    assert "skd-predicted seed 3: test2016 BLEU " in proc.stdout and "train_inner" not in proc.stdout
    assert "| baseline |" in table and "| skd-predicted |" in table and "(n=1)" in table
    for preset in ("baseline", "skd-predicted"):
        run_dir = out / preset / "seed3"
        result = json.loads((run_dir / "result.test.json").read_text())
        assert result["metrics"]["sentences"] == 100 and 0 <= result["metrics"]["bleu"] <= 100
        assert result["training"]["preset"] == preset and result["training"]["seed"] == "3"
        assert result["training"]["updates"] == 6 and result["training"]["exit_status"] == 0
        command = " ".join(result["training"]["command"])
        assert "--encoder-embed-dim 48" in command and "--decoder-ffn-embed-dim 96" in command
        assert sum(1 for _ in open(run_dir / "hyp.test.txt")) == 100
    # Evaluation with averaging uses the interval checkpoints, and says when there are too few.
    run_dir = out / "baseline" / "seed3"
    run(
        [
            "bash",
            SCRIPTS / "evaluate-translation.sh",
            config,
            "--run-dir",
            run_dir,
            "--average-last",
            "1",
            "--checkpoint",
            "last",
            "--split",
            "valid",
        ]
    )
    result = json.loads((run_dir / "result.valid.json").read_text())
    assert result["split"] == "valid"
    # The model's validation perplexity, scored without a criterion, is the one fairseq-train logged
    # for the same weights (checkpoint_last.pt after the final validation).
    logged = [r.get("ppl") for r in fairseq_log.validation_records(open(run_dir / "train.log"))]
    assert result["metrics"]["valid_ppl"] == pytest.approx(logged[-1], abs=0.006)
    assert result["metrics"]["valid_tokens"] > 0
    proc = run(
        ["bash", SCRIPTS / "evaluate-translation.sh", config, "--run-dir", run_dir, "--average-last", "5"], check=False
    )
    assert proc.returncode == 1 and "needs that many update or epoch checkpoints" in proc.stderr
    # Re-running the demo resumes from the checkpoints: no update is done again.
    again = run([*demo, "--presets", "baseline"], env=env)
    assert "baseline seed 3: already trained" in again.stdout and "baseline seed 3: already scored" in again.stdout
    assert "starting" not in again.stdout  # a finished run shows no progress line
    assert json.loads((run_dir / "result.test.json").read_text())["training"]["updates"] == 6


@pytest.mark.slow
def test_demo_shows_the_log_of_a_failing_step(multi30k_bin, tmp_path):
    config = tiny_config(tmp_path, multi30k_bin)
    env = dict(os.environ, SKD_VENV=sys.prefix)
    # An unknown preset is refused before anything is set up or trained.
    proc = run(
        ["bash", SCRIPTS / "demo.sh", "--config", config, "--out", tmp_path / "demo", "--presets", "skd-magic"],
        env=env,
        check=False,
    )
    assert proc.returncode == 1 and "demo: preset 'skd-magic' is unknown (one of: baseline" in proc.stderr
    # It lists the presets the demo runs: not those that need a teacher, which it refuses.
    listed = proc.stderr.split("(one of: ")[1].split(")")[0].split()
    assert "skd-neighbours" in listed and not {"word-kd", "tie-kd", "skd-word-kd"} & set(listed)
    assert not (tmp_path / "demo").exists()
    with open(config, "a") as f:
        f.write("FAIRSEQ_ARGS+=(--no-such-flag)\n")
    proc = run(
        ["bash", SCRIPTS / "demo.sh", "--config", config, "--out", tmp_path / "demo", "--presets", "baseline"],
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "baseline seed 1: failed (exit status 2); the last" in proc.stderr  # argparse's status
    assert "unrecognized arguments: --no-such-flag" in proc.stderr and "training failed; fairseq's log:" in proc.stderr


@pytest.mark.slow
def test_train_sh_rejects_unknown_presets(tmp_path, multi30k_bin):
    config = tiny_config(tmp_path, multi30k_bin)
    proc = run(["bash", SCRIPTS / "train.sh", config, "--criterion-preset", "skd-magic"], check=False)
    assert proc.returncode == 1 and "unknown preset 'skd-magic'" in proc.stderr
    proc = run(["bash", SCRIPTS / "train.sh", tmp_path / "nope.sh", "--criterion-preset", "baseline"], check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr


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


# Committed tables rebuilt from their archives with the options their headers name.
COMMITTED_TABLES = [
    (
        "multi30k-en-lm",
        "result.test.json",
        ["--significance", "--training-metrics", "--flags", "--compare", "skd-neighbours:skd-random"],
    ),
    ("multi30k-de-en-sweep", "result.valid.json", ["--flags", "--training-metrics"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,split_file,options", COMMITTED_TABLES, ids=[t[0] for t in COMMITTED_TABLES])
def test_committed_tables_rebuild_byte_for_byte_from_their_archives(name, split_file, options):
    """The statistics (scipy's t-test, the perplexity bootstrap), the log reader (training metrics)
    and the table writer give the committed results/NAME.md byte for byte."""
    committed = (REPO / "results" / f"{name}.md").read_text()
    rows = []  # the rows in the committed order: the tables keep the order of the result files
    for line in committed.split("\n| method |", 1)[1].splitlines()[2:]:
        if not line.startswith("| "):
            break
        rows.append(line.split(" | ")[0][2:])
    archive = REPO / "results" / f"{name}-runs"
    files = [path for method in rows for path in sorted((archive / method).glob(f"seed*/{split_file}"))]
    assert len(files) >= len(rows) > 1
    rebuilt = run(["skd-fairseq-tables", *files, *options]).stdout
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
    out = run(
        [
            *tool("make_tables"),
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
        out = run([*tool("make_tables"), result, "--significance"]).stdout
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
    out = run([*tool("make_tables"), *files, "--significance", "--training-metrics"]).stdout
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
    out = run([*tool("make_tables"), *files, "--significance"]).stdout
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
    out = run([*tool("make_tables"), *files, "--cost-from", bench]).stdout
    assert "| cost vs baseline (bench_train, interleaved): step time × / memory × |" in out
    assert "| word-kd | 20.00 (n=1) | 40.00 (n=1) | 1.034 / 1.012 |" in out
    assert "| tie-kd | 20.00 (n=1) | 40.00 (n=1) | - |" in out  # not measured there
    bench.write_text(json.dumps({"benchmark": "bench_train", "variants": [dict(variants[0], variant="other")]}))
    proc = run([*tool("make_tables"), *files, "--cost-from", bench], check=False)
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
    out = run([*tool("make_tables"), *files, "--significance", "--compare", "skd-neighbours:ls-matched"]).stdout
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
        proc = run([*tool("make_tables"), *files, "--significance", "--compare", pair], check=False)
        assert proc.returncode == 1 and message in proc.stderr, (pair, proc.stderr)
    proc = run([*tool("make_tables"), *files, "--compare", "skd-neighbours:ls-matched"], check=False)
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
    proc = run([*tool("make_tables"), base, other, "--significance"], check=False)
    assert proc.returncode == 1 and "scored different samples" in proc.stderr
    old = json.loads(other.read_text())
    del old["scores"]
    other.write_text(json.dumps(old))
    proc = run([*tool("make_tables"), base, other, "--significance"], check=False)
    assert (
        proc.returncode == 1
        and "no per-sample scores" in proc.stderr
        and "re-run scripts/evaluate-lm.sh" in proc.stderr
    )
    # Without --significance the table needs no scores.
    assert "| skd-neighbours | 54.60 (n=1) |" in run([*tool("make_tables"), base, other]).stdout


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
    out = run([*tool("make_tables"), *files, "--significance", "--cost"]).stdout
    assert (
        "| method | toy de-en test: BLEU | toy de-en test: chrF | toy de-en test: tokenised BLEU "
        "(compound-split) | cost vs baseline: time × / memory × |"
    ) in out
    assert "| skd-neighbours | 20.00 (n=1) | 40.00 (n=1) | 31.50 (n=1) | 1.100 / 1.020 |" in out
    assert "tokenised BLEU signature (on the tokenised hypotheses and references): `nrefs:1|tok:none`" in out
    # The table's tokenizer and casing, not sacrebleu's defaults (13a, mixed case).
    assert "|case:lc|" in out.split("bootstrap signature:")[1] and "|tok:none|" in out.split("bootstrap signature:")[1]


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
    rebuilt = run(
        [
            *tool("make_tables"),
            *archived,
            "--significance",
            "--flags",
            "--cost",
            "--training-metrics",
            "--compare",
            "baseline:skd-neighbours",
        ]
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


@pytest.mark.slow
def test_teacher_presets_need_a_teacher(multi30k_bin, tmp_path, translation_teacher, translation_teacher_cache):
    config = tiny_config(tmp_path, multi30k_bin)
    proc = run(["bash", SCRIPTS / "train.sh", config, "--criterion-preset", "word-kd"], check=False)
    assert proc.returncode == 1 and "preset 'word-kd' distils from a teacher: give --teacher CKPT" in proc.stderr
    train = ["bash", SCRIPTS / "train.sh", config, "--criterion-preset"]
    cache = ["--teacher-cache", translation_teacher_cache]
    for args, message in [
        (["baseline", *cache], "preset 'baseline' does not read a teacher cache"),
        (["word-kd", "--teacher-cache", tmp_path], "holds no teacher cache (no manifest.json)"),
        (["tie-kd", *cache], "preset 'tie-kd' runs the teacher beside the cache"),
    ]:
        proc = run([*train, *args], check=False)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    other = tmp_path / "other.pt"
    other.write_bytes(b"not the teacher")
    # The check itself: 0 only for a match, never for a call it cannot answer.
    check = [*tool("teacher_cache_check"), translation_teacher_cache]
    assert run([*check, translation_teacher]).returncode == 0
    assert run([*check, other], check=False).returncode == 3
    assert run(check, check=False).returncode not in (0, 3)
    proc = run([*train, "tie-kd", *cache, "--teacher", other], check=False)
    assert proc.returncode == 1 and "is not the cache of --teacher" in proc.stderr
    # The cache's own teacher (its checkpoint's bytes) is accepted: the run trains from the cache.
    proc = run(
        [
            *train,
            "word-kd",
            *cache,
            "--teacher",
            translation_teacher,
            "--save-dir",
            tmp_path / "run",
            "--max-update",
            "2",
        ]
    )
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary["teacher_cache"] == str(translation_teacher_cache) and summary["teacher_cache_topk"] == "8"
    assert "--kd-teacher-cache" in (tmp_path / "run" / "command.txt").read_text()
    proc = run(
        ["bash", SCRIPTS / "train.sh", config, "--criterion-preset", "word-kd", "--teacher", tmp_path / "x.pt"],
        check=False,
    )
    assert proc.returncode == 1 and "--teacher: checkpoint" in proc.stderr


@pytest.mark.slow
def test_train_to_convergence_stops_at_the_rules_epoch_and_cuts_the_run_there(multi30k_bin, tmp_path):
    """With a window of 1 and a threshold of 99 % the rule chooses epoch 1 once epoch 2 is validated:
    the watch stops fairseq-train, and the run is the one --max-epoch 1 would have trained."""
    text = tiny_config(tmp_path, multi30k_bin).read_text()
    text = text.replace("--max-update 8", "--max-tokens 4096").replace(
        "--save-interval-updates 4 --keep-interval-updates 2 --no-epoch-checkpoints", ""
    )
    config = tmp_path / "epochs.sh"
    config.write_text(text)
    run_dir = tmp_path / "run"
    command = [
        *("bash", SCRIPTS / "train-to-convergence.sh", config, "--criterion-preset", "baseline"),
        *("--save-dir", run_dir, "--cap", "6", "--window", "1", "--threshold", "0.99"),
    ]
    out = run(command, env=dict(os.environ, WATCH_SECONDS="1")).stdout
    assert "the rule chose epoch 1" in out and f"{run_dir}: epoch 1 chosen" in out
    assert (run_dir / "chosen-epoch").read_text().strip() == "1"
    summary = json.loads((run_dir / "train.json").read_text())
    assert summary["cut_at_epoch"] == 1
    from skd_fairseq.checkpoints import allow_fairseq_checkpoints

    allow_fairseq_checkpoints()
    last = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)
    assert last["extra_state"]["train_iterator"]["epoch"] == 2  # written at the end of epoch 1
    assert not (run_dir / "checkpoint6.pt").exists()  # stopped long before the cap
    again = run(command).stdout
    assert "chose epoch 1 already" in again
    proc = run([*command, "--max-epoch", "3"], check=False)
    assert proc.returncode == 2 and "--max-epoch is set here" in proc.stderr


@pytest.mark.slow
def test_a_bad_flag_through_train_sh_ends_with_the_message_and_leaves_no_run(multi30k_bin, tmp_path):
    """fairseq prints its configuration and a traceback first; train.sh's last line names the step
    and the error, and the directory of a run that trained nothing is gone."""
    run_dir = tmp_path / "run"
    args = [tiny_config(tmp_path, multi30k_bin), "--criterion-preset", "skd-neighbours", "--save-dir", run_dir]
    proc = run(["bash", SCRIPTS / "train.sh", *args, "--skd-topk", "-3"], check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("train: fairseq-train failed before its first checkpoint: ")
    assert "ValueError: --skd-topk" in last and last.endswith(f"{run_dir} was removed")
    assert not run_dir.exists()


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
    rebuilt = run([*tool("make_tables"), *archived, "--significance", "--flags"]).stdout
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
    run(["bash", SCRIPTS / "train.sh", config, "--criterion-preset", "baseline", "--save-dir", long], env=env)
    run(
        [
            "bash",
            SCRIPTS / "train.sh",
            config,
            "--criterion-preset",
            "baseline",
            "--save-dir",
            short,
            "--max-epoch",
            "2",
        ],
        env=env,
    )
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
    run(
        [
            "bash",
            SCRIPTS / "train.sh",
            config,
            "--criterion-preset",
            "baseline",
            "--save-dir",
            long,
            "--max-epoch",
            "2",
        ],
        env=env,
    )
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
    proc = run([*tool("make_tables"), base, one, other], check=False)
    assert proc.returncode == 1 and "'skd-neighbours' has runs with different settings: `skd-neighbours`" in proc.stderr
    assert "`skd-neighbours --skd-alpha 0.3`" in proc.stderr and "train.sh --method NAME" in proc.stderr
    proc = run([*tool("make_tables"), base, one, one], check=False)
    assert proc.returncode == 1 and "two results for skd-neighbours seed 1 on toy de-en test" in proc.stderr
    for flag in ("--significance", "--cost"):
        proc = run([*tool("make_tables"), one, flag], check=False)
        assert proc.returncode == 1 and "no results for the baseline 'baseline'" in proc.stderr, flag
    assert "| skd-neighbours | 21.00 (n=1) |" in run([*tool("make_tables"), one]).stdout


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
    out = run([*tool("make_tables"), two, one, "--flags"]).stdout
    assert "| skd-neighbours | `skd-neighbours` | 21.50 ± 0.71 (n=2) |" in out
    assert "Same setting, other flags: `skd-neighbours` seed 2 ran as `skd-neighbours --skd-alpha 0.5`" in out
    assert "Same setting" not in run([*tool("make_tables"), one]).stdout
    # Any other option that differs, a switch left out, or a run without its command: two settings.
    for name, command in [
        ("lr", train + ["--seed", "2", "--lr", "1"]),
        ("switch", [t for t in train if t != "--share-all-embeddings"]),
        ("data", ["fairseq-train", "data/other"] + train[2:]),
        ("none", None),
    ]:
        other = result(name, 3, "--skd-alpha 0.5", command)
        proc = run([*tool("make_tables"), one, other], check=False)
        assert proc.returncode == 1 and "'skd-neighbours' has runs with different settings" in proc.stderr, name


@pytest.mark.slow
def test_the_top1_and_ps_kd_presets_train_through_train_sh(multi30k_bin, tmp_path):
    config = tiny_config(tmp_path, multi30k_bin)
    # skd-top1's SKD starts after 266 updates on Multi30k; here after 2, at full strength after 4 more.
    run(
        [
            "bash",
            SCRIPTS / "train.sh",
            config,
            "--criterion-preset",
            "skd-top1",
            "--save-dir",
            tmp_path / "top1",
            "--skd-start-update",
            "2",
            "--skd-warmup-updates",
            "4",
            "--log-interval",
            "1",
        ]
    )
    inner = [r for r in fairseq_log.read_records(tmp_path / "top1" / "train.log") if r.kind == "train_inner"]
    assert inner and any(
        r.get("skd_alpha") == 1 and 0 < r.get("skd_weight") < 1 and "skd_top1_gold" in r.values for r in inner
    )
    run(
        [
            "bash",
            SCRIPTS / "train.sh",
            config,
            "--criterion-preset",
            "ps-kd",
            "--save-dir",
            tmp_path / "ps-kd",
            "--max-epoch",
            "2",
            "--log-interval",
            "1",
        ]
    )
    log = tmp_path / "ps-kd" / "train.log"
    assert "label_smoothed_ps_kd" in log.read_text()
    assert any(r.kind == "train_inner" and r.get("kd_weight") == 0 for r in fairseq_log.read_records(log))
