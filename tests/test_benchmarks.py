"""The benchmarks still run and report (tiny shapes; nothing here asserts a time)."""

import json
import sys

from conftest import REPO, run

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_criterion  # noqa: E402


def test_bench_criterion_reports_every_variant_on_a_tiny_shape(tmp_path):
    out = tmp_path / "report.json"
    run([sys.executable, REPO / "benchmarks" / "bench_criterion.py", "--tokens", "64", "--vocab", "300",
         "--dim", "16", "--topk", "4", "--repeats", "1", "--warmup", "1", "--json", out])
    report = json.loads(out.read_text())
    names = [v["variant"] for v in report["shapes"][0]["variants"]]
    assert names == ["baseline", "skd-neighbours-R0", f"skd-neighbours-R{report['refresh']}", "skd-predicted"]
    assert report["targets"] == []  # only the transformer-base shape has targets


def test_targets_pass_and_fail_on_the_transformer_base_shape():
    def report(device, step_ratio, peak):
        variants = [{"variant": "baseline", "peak_bytes": peak and 100},
                    {"variant": "skd-neighbours-R50", "amortised_ratio_to_baseline": step_ratio,
                     "peak_bytes": peak}]
        return {"device": device, "refresh": 50,
                "shapes": [dict(bench_criterion.TARGET_SHAPE, variants=variants)]}

    checks = bench_criterion.check_targets(report("cuda", 1.02, 104))
    assert [c["result"] for c in checks] == ["PASS", "PASS"]
    checks = bench_criterion.check_targets(report("cuda", 1.05, 110))
    assert [c["result"] for c in checks] == ["FAIL", "FAIL"]
    checks = bench_criterion.check_targets(report("cpu", 1.05, None))
    assert [c["result"] for c in checks] == ["PASS", "not measured (CUDA only)"]


def test_bench_topk_runs_each_method_and_states_its_target(tmp_path):
    out = tmp_path / "topk.json"
    run([sys.executable, REPO / "benchmarks" / "bench_topk.py", "--vocab", "400", "--dim", "16", "--topk", "4",
         "--chunk-sizes", "64", "--queries", "all", "--repeats", "1", "--json", out])
    report = json.loads(out.read_text())
    ran = {r["method"]: r for r in report["rows"]}
    assert ran["embedding_topk"]["exact"] and ran["naive"]["exact"]
    assert report["targets"][0]["result"] == "not run"  # the target is a GPU one
