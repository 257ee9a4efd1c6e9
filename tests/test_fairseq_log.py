"""The one reader of fairseq-train's log: the same records from --log-format simple and json."""

import json
import subprocess
import sys

import pytest

from skd_experiments import fairseq_log
from skd_experiments.choose_epochs import validation_curve
from skd_experiments.cut_run import epoch_end
from skd_experiments.follow_training import Progress
from skd_experiments.run_and_measure import fairseq_stats

CONFIG = (
    "2026-12-01 10:00:00 | INFO | fairseq_cli.train | {'_name': None, 'optimization': {'_name': None, "
    "'max_epoch': 2, 'max_update': 0, 'lr': [0.0005]}}"
)
LOADED = (
    "2026-12-01 10:00:00 | INFO | fairseq.trainer | Loaded checkpoint runs/x/checkpoint_last.pt (epoch 2 @ 100 updates)"
)

# One run as fairseq 0.12 logs it in each format (SimpleProgressBar and JsonProgressBar): an
# interval, a validation and an epoch's end, twice; then a resumption from update 100 whose clock
# restarts at 0.
SIMPLE = [
    CONFIG,
    "t | INFO | train_inner | epoch 001:     50 / 100 loss=9.1, nll_loss=8.9, ppl=477.1, wps=1000, ups=1.5, "
    "num_updates=50, lr=0.0005, train_wall=30, wall=33",
    "t | INFO | valid | epoch 001 | valid on 'valid' subset | loss 7.1 | nll_loss 6.9 | ppl 119.4 | wps 5000 | "
    "num_updates 100",
    "t | INFO | train | epoch 001 | loss 8.5 | nll_loss 8.2 | ppl 294 | wps 990 | ups 1.4 | num_updates 100 | "
    "skd_gold_q 0.75 | train_wall 60 | wall 70",
    "t | INFO | train_inner | epoch 002:     50 / 100 loss=7.0, nll_loss=6.8, ppl=111.4, wps=3000, ups=1.5, "
    "num_updates=150, lr=0.0005, train_wall=30, wall=103",
    LOADED,
    "t | INFO | train_inner | epoch 002:     50 / 100 loss=7.0, nll_loss=6.8, ppl=111.4, wps=2000, ups=1.5, "
    "num_updates=150, lr=0.0005, train_wall=30, wall=33",
    "t | INFO | valid | epoch 002 | valid on 'valid' subset | loss 6.0 | nll_loss 5.8 | ppl 55.7 | wps 5000 | "
    "num_updates 200",
    "t | INFO | train | epoch 002 | loss 6.5 | nll_loss 6.3 | ppl 78.8 | wps 1990 | ups 1.4 | num_updates 200 | "
    "skd_gold_q 0.7 | train_wall 60 | wall 70",
]


def json_line(tag, stats):
    return f"t | INFO | {tag} | {json.dumps({k: v if k == 'epoch' else str(v) for k, v in stats.items()})}"


# An update logged before a resume and again after it (by the resumed run, with its own speed and clock).
LOGGED_BEFORE_THE_RESUME = {
    "epoch": 2,
    "update": 1.5,
    "loss": 7.0,
    "nll_loss": 6.8,
    "ppl": 111.4,
    "wps": 3000,
    "ups": 1.5,
    "num_updates": 150,
    "lr": 0.0005,
    "train_wall": 30,
    "wall": 103,
}

JSON = [
    CONFIG,
    json_line(
        "train_inner",
        {
            "epoch": 1,
            "update": 0.5,
            "loss": 9.1,
            "nll_loss": 8.9,
            "ppl": 477.1,
            "wps": 1000,
            "ups": 1.5,
            "num_updates": 50,
            "lr": 0.0005,
            "train_wall": 30,
            "wall": 33,
        },
    ),
    json_line(
        "valid",
        {
            "epoch": 1,
            "valid_loss": 7.1,
            "valid_nll_loss": 6.9,
            "valid_ppl": 119.4,
            "valid_wps": 5000,
            "valid_num_updates": 100,
        },
    ),
    json_line(
        "train",
        {
            "epoch": 1,
            "train_loss": 8.5,
            "train_nll_loss": 8.2,
            "train_ppl": 294,
            "train_wps": 990,
            "train_ups": 1.4,
            "train_num_updates": 100,
            "train_skd_gold_q": 0.75,
            "train_train_wall": 60,
            "train_wall": 70,
        },
    ),
    json_line("train_inner", LOGGED_BEFORE_THE_RESUME),
    LOADED,
    json_line("train_inner", dict(LOGGED_BEFORE_THE_RESUME, wps=2000, wall=33)),  # the same update again
    json_line(
        "valid",
        {
            "epoch": 2,
            "valid_loss": 6.0,
            "valid_nll_loss": 5.8,
            "valid_ppl": 55.7,
            "valid_wps": 5000,
            "valid_num_updates": 200,
        },
    ),
    json_line(
        "train",
        {
            "epoch": 2,
            "train_loss": 6.5,
            "train_nll_loss": 6.3,
            "train_ppl": 78.8,
            "train_wps": 1990,
            "train_ups": 1.4,
            "train_num_updates": 200,
            "train_skd_gold_q": 0.7,
            "train_train_wall": 60,
            "train_wall": 70,
        },
    ),
]


@pytest.mark.parametrize("lines", [SIMPLE, JSON], ids=["simple", "json"])
def test_both_log_formats_give_the_same_records_and_run_figures(lines):
    records = fairseq_log.records(lines)
    assert [(r.kind, r.epoch) for r in records] == [
        ("train_inner", 1),
        ("valid", 1),
        ("train", 1),
        ("train_inner", 2),
        ("train_inner", 2),
        ("valid", 2),
        ("train", 2),
    ]
    epoch_end_record = records[2]
    # The epoch's run clock ("wall") and its training time ("train_wall") are told apart in both.
    assert epoch_end_record.get("wall") == 70 and epoch_end_record.get("train_wall") == 60
    assert epoch_end_record.get("skd_gold_q") == 0.75 and records[1].subset == "valid"
    # The resumed run lost updates 100-150: its 33 s count, the first invocation's up to update 100.
    assert fairseq_stats("\n".join(lines)) == {"updates": 200, "fairseq_wall_s": 70 + 70, "tokens_per_s": 2000}
    assert validation_curve(lines) == {1: (7.1, 119.4), 2: (6.0, 55.7)}
    assert epoch_end(lines, 1) == 3 and epoch_end(lines, 2) == 8 and epoch_end(lines, 3) is None
    progress = Progress()
    for line in lines:
        progress.read(line)
    assert (progress.max_epoch, progress.epoch, progress.valid_ppl) == (2, 2, 55.7)
    # The simple format counts an epoch's updates, so the total of a run by epochs is known.
    total = "/200" if lines is SIMPLE else ""
    # The criterion's own loss, and the plain NLL that compares across criteria.
    assert progress.line("run", 5.0).startswith(
        f"run: update 200{total} | loss 6.500 (criterion's; nll 6.300) | valid ppl 55.70 | "
    )


def test_lines_that_are_not_progress_records_are_skipped():
    assert fairseq_log.parse_line(CONFIG) is None and fairseq_log.parse_line(LOADED) is None
    assert fairseq_log.parse_line('t | INFO | fairseq_cli.train | {"not": "a record"}') is None
    assert fairseq_log.parse_line("t | INFO | valid | {broken json") is None
    assert fairseq_log.resumed_at(LOADED) == 100 and fairseq_log.training_limits(CONFIG) == {
        "max_update": 0,
        "max_epoch": 2,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "module",
    [
        "make_tables",
        "indexed_sizes",
        "follow_training",
        "choose_epochs",
        "archive_runs",
        "score_translation",
        "cut_run",
        "run_and_measure",
    ],
)
def test_the_experiment_tools_start_without_fairseq(module):
    """The tools the scripts call between fairseq commands import neither fairseq nor the plugin
    (whose package imports fairseq): seconds and an INFO line saved per call."""
    code = f"import sys; sys.modules['fairseq'] = None; import skd_experiments.{module}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_progress_line_gives_this_models_time_left_and_the_queued_models():
    progress = Progress()
    progress.max_update = 300
    progress.values = {"num_updates": 100.0, "loss": 5.0, "wps": 1000.0, "ups": 0.5}
    # 200 updates left at 0.5 a second: 6.7 min; two more models of 300 updates: 20 min more.
    assert progress.line("run", 1.0).endswith("| this model 6.7 min left")
    assert progress.line("run", 1.0, queued=2).endswith("| this model 6.7 min left | all 3 models ~27 min left")
