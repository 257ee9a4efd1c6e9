"""skd-fairseq-export-average: the moving average of a ``--self-kd-teacher ema`` run as a model.

  skd-fairseq-export-average CHECKPOINT --output AVERAGE.pt

``label_smoothed_self_kd`` keeps its moving average of the student's weights (the teacher) in
every checkpoint it writes, in fairseq's ``task_state``. This writes a copy of CHECKPOINT whose
model is that average, in fp32 as it was kept, so that fairseq-generate, fairseq-eval-lm and
skd-fairseq-validation-perplexity score the average instead of the student. The copy no longer
holds the average in its task state nor the optimizer's state: it is a model to evaluate, not a
run to resume.
"""

import argparse
import os
import sys

import torch

from .checkpoints import allow_fairseq_checkpoints
from .criterions.label_smoothed_self_kd import TASK_STATE_KEY, saved_moving_average


def export_average(state, path: str):
    """(STATE with the moving average it holds as its model, the average: {"weights", "updates",
    "decay"}) for STATE, a loaded checkpoint; ValueError when it holds no average, or one whose
    parameters are not the model's."""
    average = saved_moving_average(state) if isinstance(state, dict) and "model" in state else None
    if average is None:
        raise ValueError(
            f"{path} holds no moving average: it was not written by a run with --criterion "
            "label_smoothed_self_kd --self-kd-teacher ema (give a checkpoint of such a run)"
        )
    weights = average["weights"]
    if weights.keys() != state["model"].keys():
        differ = sorted(set(state["model"]) ^ set(weights))
        raise ValueError(
            f"{path}: the moving average and the model have different parameters ({len(differ)}, e.g. "
            f"{differ[0]}); the checkpoint was written by other code than this plugin's: export it with that code"
        )
    task_state = {k: v for k, v in state["task_state"].items() if k != TASK_STATE_KEY}
    exported = {k: v for k, v in state.items() if k != "last_optimizer_state"}
    return dict(exported, model=dict(weights), task_state=task_state), average


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint of a run with --self-kd-teacher ema")
    parser.add_argument("--output", required=True, help="where to write the checkpoint with the average as its model")
    args = parser.parse_args(argv)
    name = "skd-fairseq-export-average"
    if not os.path.isfile(args.checkpoint):
        sys.exit(f"{name}: {args.checkpoint}: no such checkpoint file")
    if os.path.exists(args.output) and os.path.samefile(args.output, args.checkpoint):
        sys.exit(f"{name}: --output is the input checkpoint; give another path (the run's own stays as it is)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        sys.exit(f"{name}: --output {args.output}: its directory does not exist (create it first)")
    allow_fairseq_checkpoints()
    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for a file that is not a checkpoint
        sys.exit(f"{name}: {args.checkpoint} is not a checkpoint torch can load ({type(err).__name__}: {err})")
    try:
        exported, average = export_average(state, args.checkpoint)
    except ValueError as err:
        sys.exit(f"{name}: {err}")
    torch.save(exported, args.output)
    print(
        f"{name}: wrote {args.output}: the moving average of {args.checkpoint} (decay "
        f"{average['decay']}, the student's weights taken in up to update {average['updates']})"
    )


if __name__ == "__main__":
    main()
