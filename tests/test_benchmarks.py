"""The benchmarks still run and report (tiny shapes; nothing here asserts a time)."""

import argparse
import json
import sys

import pytest
import torch
from conftest import REPO, run, tiny_config

from skd_experiments import criterion_targets, peak_memory

# bench_criterion.py at a tiny shape: N 64 tokens, V 300, D 16, k 4, one timed repeat.
TINY_CRITERION_SHAPE = "--tokens 64 --vocab 300 --dim 16 --topk 4 --repeats 1 --warmup 1".split()


@pytest.mark.slow
def test_bench_criterion_reports_every_variant_on_a_tiny_shape(tmp_path):
    out = tmp_path / "report.json"
    run(
        [
            sys.executable,
            REPO / "benchmarks" / "bench_criterion.py",
            *TINY_CRITERION_SHAPE,
            "--json",
            out,
        ]
    )
    report = json.loads(out.read_text())
    names = [v["variant"] for v in report["shapes"][0]["variants"]]
    assert names == ["baseline", "skd-neighbours-R0", f"skd-neighbours-R{report['refresh']}", "skd-predicted"]
    if peak_memory.cpu_supported() is None:  # every variant's step allocates its logits at least
        logits = 64 * 300 * 4
        assert all(v["peak_bytes"] >= logits for v in report["shapes"][0]["variants"])
        assert report["shapes"][0]["variants"][2]["refresh_step_peak_bytes"] >= logits
    assert report["targets"] == []  # only the transformer-base shape has targets


@pytest.mark.slow
def test_bench_criterion_adaptive_softmax_on_a_tiny_shape(tmp_path):
    out = tmp_path / "report.json"
    proc = run(
        [
            sys.executable,
            REPO / "benchmarks" / "bench_criterion.py",
            "--adaptive",
            "100,200",
            *TINY_CRITERION_SHAPE,
            "--refresh-rows",
            "60",
            "--adaptive-candidates",
            "cluster",
            "any",
            "--json",
            out,
            "--markdown",
            "-",
        ]
    )
    report = json.loads(out.read_text())
    shape = report["shapes"][0]
    assert shape["adaptive_cutoff"] == [100, 200] and shape["refresh_rows_timed"] == 60
    assert shape["adaptive_candidates"] == "cluster"  # the first mode's refresh is the one timed
    refresh = f"skd-neighbours-R{report['refresh']}"
    assert [v["variant"] for v in shape["variants"]] == [
        "baseline",
        refresh,
        "skd-random",
        "skd-predicted",
        f"{refresh}-any",
        "skd-random-any",
        "skd-predicted-any",
    ]
    assert "timed on at most 60 query rows of each searched space" in proc.stdout
    assert "one table refresh took" in proc.stdout and "(cluster candidates)" in proc.stdout
    # The WikiText-103 shape has targets; a tiny one has none.
    assert report["targets"] == []
    shape = dict(shape, **criterion_targets.ADAPTIVE_TARGET_SHAPE)
    shape["variants"][1].update(
        ratio_to_baseline=1.02,
        amortised_ratio_to_baseline=1.2,
        refresh_s=150.0,
        peak_bytes=110,
        refresh_step_peak_bytes=120,
    )
    shape["variants"][0]["peak_bytes"] = 100
    checks = criterion_targets.check_targets({"device": "cpu", "refresh": report["refresh"], "shapes": [shape]})
    # On the CPU: the step with the refresh amortised (as every shape), the refresh against 51 min / 15, the memory.
    assert [(c["result"], round(c["value"], 2)) for c in checks] == [("FAIL", 1.2), ("PASS", 150.0), ("PASS", 1.2)]
    assert (
        "cluster candidates, vs adaptive_loss" in checks[0]["shape"]
        and "refresh amortised) <= 1.15" in checks[0]["target"]
    )
    assert "table refresh <= 204 s" in checks[1]["target"]
    shape["variants"][1].update(refresh_s=205.0, refresh_step_peak_bytes=130)
    checks = criterion_targets.check_targets({"device": "cpu", "refresh": report["refresh"], "shapes": [shape]})
    assert [c["result"] for c in checks] == ["FAIL", "FAIL", "FAIL"]


def test_targets_pass_and_fail_on_the_transformer_base_shape():
    def report(device, step_ratio, peak):
        variants = [
            {"variant": "baseline", "peak_bytes": peak and 100},
            {
                "variant": "skd-neighbours-R50",
                "amortised_ratio_to_baseline": step_ratio,
                "peak_bytes": peak,
                "refresh_step_peak_bytes": peak,
            },
        ]
        return {"device": device, "refresh": 50, "shapes": [dict(criterion_targets.TARGET_SHAPE, variants=variants)]}

    checks = criterion_targets.check_targets(report("cuda", 1.02, 104))
    assert [c["result"] for c in checks] == ["PASS", "PASS"]
    checks = criterion_targets.check_targets(report("cuda", 1.05, 110))
    assert [c["result"] for c in checks] == ["FAIL", "FAIL"]
    checks = criterion_targets.check_targets(report("cpu", 1.05, None))
    assert [c["result"] for c in checks] == ["PASS", "not measured (no peaks in the report)"]


def test_the_memory_target_takes_the_worst_step_a_table_refresh():
    variants = [
        {"variant": "baseline", "peak_bytes": 100},
        {
            "variant": "skd-neighbours-R50",
            "amortised_ratio_to_baseline": 1.0,
            "peak_bytes": 101,
            "refresh_step_peak_bytes": 108,
        },
    ]
    report = {"device": "cpu", "refresh": 50, "shapes": [dict(criterion_targets.TARGET_SHAPE, variants=variants)]}
    memory = criterion_targets.check_targets(report)[1]
    assert memory["result"] == "FAIL" and memory["value"] == pytest.approx(1.08)


def test_axes_grid_varies_one_axis_at_a_time_around_the_base_shape():
    args = argparse.Namespace(grid="axes", tokens=[4096, 8192], vocab=[8000], dim=[512, 1024], topk=[8])
    assert criterion_targets.shape_grid(args) == [
        (8192, 32000, 512, 8),
        (4096, 32000, 512, 8),
        (8192, 8000, 512, 8),
        (8192, 32000, 1024, 8),
    ]
    args.grid = "product"
    assert len(criterion_targets.shape_grid(args)) == 4


@pytest.mark.skipif(peak_memory.cpu_supported() is not None, reason="needs Linux's clear_refs and glibc")
def test_cpu_peak_memory_sees_a_buffer_that_is_freed_again():
    peak_memory.cpu_mode()
    torch.empty(1).fill_(0)  # torch's own start-up allocations happen before the block
    with peak_memory.PeakMemory("cpu") as small:
        pass
    with peak_memory.PeakMemory("cpu") as big:
        buffer = torch.ones(16 << 20)  # 64 MiB, touched
        del buffer
    assert big.bytes >= 60 << 20 and small.bytes < 8 << 20
    with peak_memory.PeakMemory("cpu") as again:  # freed memory went back: seen again
        buffer = torch.ones(16 << 20)
        del buffer
    assert again.bytes >= 60 << 20


@pytest.mark.slow
def test_bench_topk_runs_each_method_and_states_its_target(tmp_path):
    out = tmp_path / "topk.json"
    run(
        [
            sys.executable,
            REPO / "benchmarks" / "bench_topk.py",
            "--vocab",
            "400",
            "--dim",
            "16",
            "--topk",
            "4",
            "--chunk-sizes",
            "64",
            "--queries",
            "all",
            "--repeats",
            "1",
            "--json",
            out,
        ]
    )
    report = json.loads(out.read_text())
    ran = {r["method"]: r for r in report["rows"]}
    assert ran["embedding_topk"]["exact"] and ran["naive"]["exact"]
    assert report["targets"][0]["result"] == "not run"  # the target is a GPU one


@pytest.mark.slow
def test_bench_train_alternates_presets_and_reports_ratios(multi30k_bin, tmp_path, translation_teacher_cache):
    out = tmp_path / "train.json"
    run(
        [
            sys.executable,
            REPO / "benchmarks" / "bench_train.py",
            "--config",
            tiny_config(tmp_path, multi30k_bin),
            "--updates",
            "6",
            "--skip-updates",
            "2",
            "--log-interval",
            "1",
            "--rounds",
            "1",
            "--variant",
            "baseline=baseline",
            "--variant",
            "skd=skd-neighbours --skd-neighbour-refresh 4",
            "--variant",
            "skd-R1=skd-neighbours --skd-neighbour-refresh 1",
            "--variant",
            f"kd-cached=word-kd --teacher-cache {translation_teacher_cache}",
            "--amortise",
            "skd=skd-R1",
            "--refresh",
            "4",
            "--target",
            "kd-cached=100,100",
            "--target",
            "skd-R1=0.001,100",
            "--common",
            "--max-tokens 512",
            "--json",
            out,
        ]
    )
    report = json.loads(out.read_text())
    rows = {row["variant"]: row for row in report["variants"]}
    # Each ratio is the baseline's median throughput over the variant's (the time of a step per token).
    base = rows["baseline"]["median_tokens_per_s"]
    assert base > 0 and rows["skd"]["median_tokens_per_s"] > 0
    for name in ("skd", "skd-R1"):
        assert rows[name]["step_time_ratio"] == pytest.approx(base / rows[name]["median_tokens_per_s"], abs=2e-3)
    assert rows["skd"]["flags"] == ["--skd-neighbour-refresh", "4"] and report["common_flags"] == [
        "--max-tokens",
        "512",
    ]
    assert report["peak_memory"] == ["host resident set"] and rows["skd"]["peak_memory_mib"][0] > 0
    # The refresh of skd-R1 (every update) amortised over skd's R = 4 updates.
    amortised = rows["skd, refresh amortised (R = 4)"]
    t, t1 = rows["skd"]["step_time_ratio"], rows["skd-R1"]["step_time_ratio"]
    assert amortised["step_time_ratio"] == pytest.approx(t + (t1 - t) / 4, abs=1e-3)
    assert amortised["peak_memory_ratio"] == max(rows["skd"]["peak_memory_ratio"], rows["skd-R1"]["peak_memory_ratio"])
    # --target: PASS or FAIL per ratio, against the first variant.
    assert [(c["target"], c["result"]) for c in report["targets"]] == [
        ("kd-cached: step-time ratio to baseline <= 100.0", "PASS"),
        ("kd-cached: peak-memory ratio to baseline <= 100.0", "PASS"),
        ("skd-R1: step-time ratio to baseline <= 0.001", "FAIL"),
        ("skd-R1: peak-memory ratio to baseline <= 100.0", "PASS"),
    ]
    assert report["targets"][0]["value"] == rows["kd-cached"]["step_time_ratio"]
    proc = run(
        [sys.executable, REPO / "benchmarks" / "bench_train.py", "--variant", "a=baseline", "--target", "a=1.1"],
        check=False,
    )
    assert proc.returncode == 2 and "expected NAME=TIME,MEMORY" in proc.stderr
    proc = run(
        [sys.executable, REPO / "benchmarks" / "bench_train.py", "--variant", "a=baseline", "--amortise", "a=b"],
        check=False,
    )
    assert proc.returncode == 2 and "--amortise 'a=b': expected STEADY=EVERY, two of the variants ['a']" in proc.stderr


def test_bench_train_names_the_starting_commit_and_a_checkout_that_changed(tmp_path, monkeypatch):
    """Each run imports the checkout as it starts: the report names the commit of the first run and
    says when the checkout changed before the last one (the runs themselves faked here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_train", REPO / "benchmarks" / "bench_train.py")
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    states = iter([("aaa1111", "diff0"), ("bbb2222", "diff0")])
    monkeypatch.setattr(bench_train, "checkout_state", lambda: next(states))
    monkeypatch.setattr(bench_train, "run_variant", lambda *a: ([(1000.0, 5), (1000.0, 10)], 1.0, 100, "host"))
    out = tmp_path / "r.json"
    argv = ["bench_train.py", "--variant", "a=baseline", "--updates", "10", "--skip-updates", "2", "--rounds", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--json", str(out), "--markdown", str(tmp_path / "r.md")])
    bench_train.main()
    report = json.loads(out.read_text())
    assert report["commit"] == "aaa1111" and report["commit_at_end"] == "bbb2222"
    assert (
        "commit aaa1111 (the checkout changed during the runs: bbb2222 at the end)" in (tmp_path / "r.md").read_text()
    )


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_step_on_the_cpu(multi30k_bin, tmp_path):
    """benchmarks/gpu-check.sh --smoke: the GPU acceptance run's steps on tiny shapes, so the script
    a GPU machine runs cannot rot (its CUDA tests skip here)."""
    out = tmp_path / "out"
    run(
        [
            "bash",
            REPO / "benchmarks" / "gpu-check.sh",
            out,
            "--smoke",
            "--config",
            tiny_config(tmp_path, multi30k_bin),
            "--updates",
            "3",
        ],
        timeout=900,
    )
    report = json.loads((out / "gpu-check.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["cuda-tests", "criterion-bf16", "topk", "adaptive", "train-fp16"]
    assert all(s["status"] == "passed" for s in report["steps"]), report["steps"]
    assert report["smoke"] and "# GPU check (smoke, CPU)" in (out / "gpu-check.md").read_text()
    assert "skipped" in (out / "cuda-tests.log").read_text()
    proc = run(["bash", REPO / "benchmarks" / "gpu-check.sh", tmp_path / "cpu"], check=False)
    assert proc.returncode == 2 and "torch sees no CUDA device" in proc.stderr


@pytest.mark.slow
def test_synthetic_lm_data_has_the_dictionary_size_and_zipf_shares(tmp_path):
    """The WikiText-103 timing data: the dictionary size asked for (special symbols included), binarised
    and marked finished for train.sh --data, words drawn by Zipf's law (frequent ids first)."""
    run(
        [
            sys.executable,
            REPO / "benchmarks" / "synthetic_lm_data.py",
            "--out",
            tmp_path / "syn",
            "--vocab",
            "1000",
            "--train-tokens",
            "200000",
            "--valid-tokens",
            "200",
        ]
    )
    bin_dir = tmp_path / "syn" / "bin"
    assert (bin_dir / ".done").exists() and (bin_dir / "train.bin").exists()
    assert sum(1 for _ in open(bin_dir / "dict.txt")) + 4 == 1000
    ranks = [int(word[1:]) for line in open(tmp_path / "syn" / "train.txt") for word in line.split()]
    head = sum(r < 96 for r in ranks) / len(ranks)  # H(96) / H(996), about 0.68
    want = sum(1 / r for r in range(1, 97)) / sum(1 / r for r in range(1, 997))
    assert len(ranks) == 200000 and head == pytest.approx(want, abs=0.01) and min(ranks) == 0 and max(ranks) <= 995
    proc = run(
        [sys.executable, REPO / "benchmarks" / "synthetic_lm_data.py", "--out", tmp_path / "x", "--vocab", "4"],
        check=False,
    )
    assert proc.returncode == 2 and "--vocab must exceed the 4 special symbols" in proc.stderr


@pytest.mark.slow
def test_bench_refresh_ranks_builds_one_table_on_two_gloo_ranks(tmp_path):
    out = tmp_path / "ranks.json"
    run(
        [
            sys.executable,
            REPO / "benchmarks" / "bench_refresh_ranks.py",
            "--vocab",
            "600",
            "--dim",
            "16",
            "--adaptive",
            "200,400",
            "--ranks",
            "1",
            "2",
            "--json",
            out,
        ]
    )
    report = json.loads(out.read_text())
    assert [row["ranks"] for row in report["rows"]] == [1, 2]
    assert all(row["tables_equal_to_first"] and row["refresh_s"] > 0 for row in report["rows"])
    assert report["rows"][0]["all_gather_s"] == 0 and "clusters in their own spaces" in report["shape"]
