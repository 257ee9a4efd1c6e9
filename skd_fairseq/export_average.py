"""skd-fairseq-export-average: the moving average of a ``--self-kd-teacher ema`` run as a model.

  skd-fairseq-export-average CHECKPOINT --output AVERAGE.pt

``label_smoothed_self_kd`` keeps its moving average of the student's weights (the teacher) in
every checkpoint it writes, in fairseq's ``task_state``. This writes a copy of CHECKPOINT whose
model is that average, in fp32 as it was kept, so that fairseq-generate, fairseq-eval-lm and
skd-fairseq-validation-perplexity score the average instead of the student. The copy no longer
holds the average in its task state: it is a model to evaluate, not a run to resume.
"""

import argparse
import os
import sys

import torch

from .checkpoints import allow_fairseq_checkpoints
from .criterions.label_smoothed_self_kd import TASK_STATE_KEY, saved_moving_average


def export_average(state, path: str):
    """STATE (a loaded checkpoint) with the moving average it holds as its model; ValueError when
    it holds none or the average's parameters are not the model's."""
    average = saved_moving_average(state)
    if average is None:
        raise ValueError(
            f"{path} holds no moving average: it was not written by a run with --criterion "
            "label_smoothed_self_kd --self-kd-teacher ema (give a checkpoint of such a run)"
        )
    weights = average["weights"]
    if weights.keys() != state["model"].keys():
        missing = sorted(set(state["model"]) ^ set(weights))[:5]
        raise ValueError(f"{path}: the moving average and the model differ in parameters ({', '.join(missing)} ...)")
    task_state = {k: v for k, v in state["task_state"].items() if k != TASK_STATE_KEY}
    return dict(state, model=dict(weights), task_state=task_state), average


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint of a run with --self-kd-teacher ema")
    parser.add_argument("--output", required=True, help="where to write the checkpoint with the average as its model")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        sys.exit(f"export_average: {args.checkpoint}: no such checkpoint file")
    if os.path.abspath(args.output) == os.path.abspath(args.checkpoint):
        sys.exit("export_average: --output is the input checkpoint; give another path (the run's own stays as it is)")
    allow_fairseq_checkpoints()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    try:
        exported, average = export_average(state, args.checkpoint)
    except ValueError as err:
        sys.exit(f"export_average: {err}")
    torch.save(exported, args.output)
    print(
        f"export_average: wrote {args.output}: the moving average of {args.checkpoint} (decay "
        f"{average['decay']}, the student's weights taken in up to update {average['updates']})"
    )


if __name__ == "__main__":
    main()
