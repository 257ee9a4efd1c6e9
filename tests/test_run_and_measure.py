"""run_and_measure, the wrapper every training run goes through: the summary it writes from
fairseq's log, resumed and killed invocations, the commits a run was trained with, and the GPU
peak the plugin reports to it."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, run, tool

from skd_experiments import run_and_measure, table_notes


def test_run_and_measure_summarises_a_fairseq_log():
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
def test_run_and_measure_counts_a_killed_invocation_and_keeps_what_it_lost_unknown(tmp_path):
    summary, marker = tmp_path / "train.json", tmp_path / "train.json.running"
    command = [*tool("run_and_measure"), "--log", tmp_path / "train.log", "--summary", summary, "--"]
    run([*command, sys.executable, "-c", "print('epoch 1')"])
    assert json.loads(summary.read_text())["invocations"] == 1 and not marker.exists()
    # The second invocation is killed: it leaves its marker and no summary of its own.
    sleeper = [*map(str, command), sys.executable, "-c", "import time; time.sleep(60)"]
    proc = subprocess.Popen(sleeper, start_new_session=True)
    for _ in range(200):
        if marker.exists():
            break
        time.sleep(0.05)
    os.killpg(proc.pid, 9)  # the wrapper and its command, as a machine that ends kills both
    proc.wait()
    started = json.loads(marker.read_text())
    assert json.loads(summary.read_text())["invocations"] == 1 and started["started"].endswith("Z")
    run([*command, sys.executable, "-c", "print('epoch 2')"])
    after = json.loads(summary.read_text())
    assert (after["invocations"], after["interrupted_invocations"]) == (3, 1) and not marker.exists()
    assert after["all_invocations_wall_s"] is None and after["invocation_wall_s"] is not None
    assert after["peak_rss_mib"] is None  # the killed invocation's peak is unknown: no smaller number instead
    assert after["commits"] == [c for c in dict.fromkeys([started["commit"], after["commit"]]) if c]


def test_a_run_resumed_with_other_code_keeps_every_commit_and_the_table_names_them(tmp_path):
    assert run_and_measure.trained_with({}, "aaa") == ["aaa"]
    assert run_and_measure.trained_with({"commit": "aaa"}, "aaa") == ["aaa"]
    # A summary written before the list existed: its one commit is the earlier invocations'.
    assert run_and_measure.trained_with({"commit": "aaa"}, "bbb") == ["aaa", "bbb"]
    assert run_and_measure.trained_with({"commits": ["aaa", "bbb"], "commit": "bbb"}, "aaa") == ["aaa", "bbb"]
    assert run_and_measure.trained_with({"commit": None}, None) == []  # outside a git checkout
    results = []
    for name, training in (("a", {"commit": "ccc"}), ("b", {"commit": "bbb", "commits": ["aaa", "bbb"]})):
        results.append(tmp_path / f"{name}.json")
        results[-1].write_text(json.dumps({"training": training}))
    assert table_notes.commits(results) == "aaa, bbb, ccc"


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
