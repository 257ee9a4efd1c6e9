"""The shell scripts and the small tools on small inputs: usage and bad arguments, data preparation,
train.sh and its presets, checkpoint averaging, and the demo pipeline end to end."""

import gzip
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SCRIPTS, prepare_multi30k_slice, run, tiny_config, tool

from skd_experiments import fairseq_log, score_translation


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
    run_dir = tmp_path / "runs" / "config" / "run"  # runs/ and its config/ made for the run, then removed
    args = [tiny_config(tmp_path, multi30k_bin), "--criterion-preset", "skd-neighbours", "--save-dir", run_dir]
    proc = run(["bash", SCRIPTS / "train.sh", *args, "--skd-topk", "-3"], check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("train: fairseq-train failed before its first checkpoint: ")
    assert "ValueError: --skd-topk" in last and last.endswith(f"{run_dir} was removed")
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "other").mkdir(parents=True)  # a directory beside the run's stays
    proc = run(["bash", SCRIPTS / "train.sh", *args, "--skd-topk", "-3"], check=False)
    assert proc.returncode == 1 and not (tmp_path / "runs" / "config").exists()
    assert (tmp_path / "runs" / "other").is_dir()


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
