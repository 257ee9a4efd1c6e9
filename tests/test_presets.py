"""configs/presets.sh and the configs' table rows: the matched-smoothing control, the SKD presets'
shared setting, every table row a preset, and every preset building its criterion."""

import subprocess

import pytest
import torch
from conftest import REPO, build_translation, preset_arguments, save_teacher, translation_sample


def test_matched_smoothing_control_leaves_the_gold_token_what_skd_leaves_it():
    """ls-matched: epsilon = 1 - [(1 - alpha)(1 - eps_skd) + alpha rho], rounded to 0.05 (issue 15)."""
    presets = preset_arguments()

    def flag(args, name):
        return float(args[args.index(name) + 1])

    skd = presets["skd-neighbours"]
    assert "--skd-gold-mass" in skd, "the matched control is defined by the tuned preset's gold mass"
    alpha, rho, eps_skd = flag(skd, "--skd-alpha"), flag(skd, "--skd-gold-mass"), flag(skd, "--label-smoothing")
    gold_mass = (1 - alpha) * (1 - eps_skd) + alpha * rho
    matched = presets["ls-matched"]
    assert matched[matched.index("--criterion") + 1] == "label_smoothed_cross_entropy"
    epsilon = flag(matched, "--label-smoothing")
    assert abs(epsilon / 0.05 - round(epsilon / 0.05)) < 1e-9
    assert abs(epsilon - (1 - gold_mass)) <= 0.025 + 1e-9


def test_skd_presets_share_one_tuned_setting():
    """skd-predicted and the skd-random control differ from skd-neighbours only in the candidates."""
    presets = preset_arguments()

    def without_candidates(args):
        i = args.index("--skd-candidates")
        return args[:i] + args[i + 2 :]

    assert presets["skd-neighbours"][presets["skd-neighbours"].index("--skd-candidates") + 1] == "neighbours"
    for name, mode in (("skd-predicted", "predicted"), ("skd-random", "random")):
        assert presets[name][presets[name].index("--skd-candidates") + 1] == mode
        assert without_candidates(presets[name]) == without_candidates(presets["skd-neighbours"]), name


def test_every_configs_table_rows_are_presets():
    """A config's TABLE_PRESETS (the rows reproduce.sh trains) name presets that exist: those of
    configs/presets.sh or the config's own (added to PRESETS after it, as train.sh reads them)."""
    configs = sorted((REPO / "configs").glob("*.sh"))
    with_rows = 0
    for config in configs:
        rows, presets = subprocess.run(
            ["bash", "-c", f'. configs/presets.sh; . "{config}"; printf "%s\\n%s" "${{TABLE_PRESETS:-}}" "$PRESETS"'],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        assert set(rows.split()) <= set(presets.split()), (config.name, set(rows.split()) - set(presets.split()))
        rows = rows.split()
        with_rows += bool(rows)
    assert with_rows >= 2  # multi30k-de-en.sh and multi30k-en-lm.sh


@pytest.mark.slow
def test_every_preset_builds_its_criterion(tmp_path, fresh_metrics):
    teacher, _ = save_teacher(tmp_path / "teacher")
    presets = preset_arguments({"KD_TEACHER": teacher})
    assert {"baseline", "skd-neighbours", "skd-predicted", "skd-random", "skd-top1", "ps-kd", "rdrop"} <= set(presets)
    for name, args in presets.items():
        # Every config trains for a number of epochs, which PS-KD's schedule needs.
        task, model, criterion, _ = build_translation(tmp_path / "teacher", args + ["--max-epoch", "4"])
        model.train()
        loss, _, _ = criterion(model, translation_sample(task))
        assert torch.isfinite(loss), name
