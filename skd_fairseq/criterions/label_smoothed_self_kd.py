"""``--criterion label_smoothed_self_kd``: self-distillation from the model's dropout twin or its moving average.

L = L_data + alpha_t T^2 KL(q || p_s^(T)) over the target positions: L_data is
``label_smoothed_skd``'s loss (fairseq's label-smoothed NLL while --skd-alpha is 0, its default
here), and q the teacher's distribution at temperature T, computed without gradient:

* ``--self-kd-teacher twin``: the same batch through the same model with another dropout mask
  (R-Drop with the gradient stopped on one side: one extra forward, no second backward);
* ``--self-kd-teacher ema``: an exponential moving average of the student's weights, run without
  dropout: after each update u, ema = beta ema + (1 - beta) theta_u (ema = theta_u up to
  --self-kd-ema-start-update). Its weights are kept in fp32 and the teacher runs in fp32; they
  are saved in every checkpoint (fairseq's ``task_state``) and a resumed run continues them.

alpha_t follows --self-kd-alpha with --self-kd-start-update and --self-kd-warmup-updates (the
schedule of ``label_smoothed_skd``'s alpha). The teacher term is :class:`.teacher_term.TeacherTerm`;
the KL is :func:`skd_fairseq.distillation.kl_to_teacher`.
"""

import copy
import logging
import os
from dataclasses import dataclass, field

import torch
from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum
from omegaconf import II

from ..schedule import skd_alpha
from .fairseq_access import relay_task_state, unwrapped
from .teacher import TeacherEnsemble, restored_checkpoint
from .teacher_term import LabelSmoothedTeacherCriterion, LabelSmoothedTeacherCriterionConfig, TeacherTerm

logger = logging.getLogger(__name__)

SELF_KD_TEACHERS = ("twin", "ema")
TASK_STATE_KEY = "label_smoothed_self_kd_ema"


@dataclass
class LabelSmoothedSelfKdCriterionConfig(LabelSmoothedTeacherCriterionConfig):
    self_kd_teacher: ChoiceEnum(SELF_KD_TEACHERS) = field(
        default="twin",
        metadata={
            "help": "twin: the same batch through the same model with another dropout mask; ema: a "
            "moving average of the student's weights, without dropout"
        },
    )
    self_kd_alpha: float = field(
        default=1.0,
        metadata={"help": "alpha >= 0: loss = student loss + alpha * T^2 * KL(teacher || student)"},
    )
    self_kd_start_update: int = field(default=0, metadata={"help": "alpha is 0 before this many updates (>= 0)"})
    self_kd_warmup_updates: int = field(
        default=0,
        metadata={"help": "alpha rises linearly from the start update to --self-kd-alpha over this many updates"},
    )
    self_kd_temperature: float = field(
        default=1.0, metadata={"help": "T > 0: both distributions are softmax(logits / T) in the teacher term"}
    )
    self_kd_ema_decay: float = field(
        default=0.999, metadata={"help": "beta in (0, 1) of --self-kd-teacher ema: ema = beta ema + (1 - beta) theta"}
    )
    self_kd_ema_start_update: int = field(
        default=0,
        metadata={"help": "--self-kd-teacher ema: up to this update the average is the student itself (>= 0)"},
    )
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    checkpoint_suffix: str = II("checkpoint.checkpoint_suffix")


def check_self_kd_flags(cfg) -> None:
    if not cfg.self_kd_alpha >= 0:
        raise ValueError(f"--self-kd-alpha must be >= 0, got {cfg.self_kd_alpha}")
    if cfg.self_kd_start_update < 0:
        raise ValueError(f"--self-kd-start-update must be >= 0, got {cfg.self_kd_start_update}")
    if cfg.self_kd_warmup_updates < 0:
        raise ValueError(f"--self-kd-warmup-updates must be >= 0, got {cfg.self_kd_warmup_updates}")
    if not cfg.self_kd_temperature > 0:
        raise ValueError(f"--self-kd-temperature must be > 0, got {cfg.self_kd_temperature}")
    if not 0.0 < cfg.self_kd_ema_decay < 1.0:
        raise ValueError(f"--self-kd-ema-decay must be in (0, 1), got {cfg.self_kd_ema_decay}")
    if cfg.self_kd_ema_start_update < 0:
        raise ValueError(f"--self-kd-ema-start-update must be >= 0, got {cfg.self_kd_ema_start_update}")


class DropoutTwin:
    """The student itself as a teacher: its forward again, with dropout on (another mask), without
    gradient. The same interface as :class:`TeacherEnsemble` for :class:`TeacherTerm`."""

    def __init__(self, model):
        self.model = model

    def log_probs(self, net_input, like=None, encoder_outs=None):
        with torch.no_grad():
            net_output = self.model(**net_input)
            lprobs = self.model.get_normalized_probs(net_output, log_probs=True)
            del net_output  # the logits [B, T, V]: not kept alive while the caller holds lprobs
        yield lprobs


def saved_moving_average(state):
    """The moving average a loaded checkpoint holds ({"weights", "updates", "decay"}), or None:
    fairseq-train saves it in the task state of every checkpoint of a ``--self-kd-teacher ema`` run."""
    return (state.get("task_state") or {}).get(TASK_STATE_KEY)


class MovingAverage:
    """The moving average of a student's weights, an fp32 frozen copy of the model in eval mode.

    :meth:`follow` is called at every training step with the number of updates applied so far:
    when it has grown, the average takes the student's weights in (one step of the formula per
    observed update), so the micro-batches of one update (--update-freq) and the ranks of
    distributed training (replicated weights) all see the same teacher.
    """

    def __init__(self, decay: float, start_update: int):
        self.decay, self.start_update = decay, start_update
        self.teacher = None  # a TeacherEnsemble of one fp32 model, built at the first step
        self.updates = None

    def follow(self, model, num_updates: int, restored_state=None) -> None:
        if self.teacher is None:
            self.teacher = TeacherEnsemble([copy.deepcopy(model).float()], dtype=torch.float32)
            if restored_state is None:
                self.updates = num_updates  # a new run: the average starts as the student
                return
            self.load(restored_state)  # a resumed run: the saved average, then this update's step
        if num_updates == self.updates:
            return
        decay = self.decay if num_updates > self.start_update else 0.0
        with torch.no_grad():
            (average,) = self.teacher.models
            # named_parameters/named_buffers list a tied tensor once (state_dict() once per name, which
            # would decay shared embeddings two or three times a step).
            current = dict(model.named_parameters())
            current.update(model.named_buffers())
            for name, value in [*average.named_parameters(), *average.named_buffers()]:
                if value.is_floating_point():
                    value.mul_(decay).add_(current[name].float(), alpha=1.0 - decay)
                else:
                    value.copy_(current[name])
        self.updates = num_updates

    def state(self):
        if self.teacher is None:
            return None
        (average,) = self.teacher.models
        return {"weights": average.state_dict(), "updates": self.updates, "decay": self.decay}

    def load(self, state) -> None:
        (average,) = self.teacher.models
        average.load_state_dict(state["weights"], strict=True)
        self.updates = int(state["updates"])


@register_criterion("label_smoothed_self_kd", dataclass=LabelSmoothedSelfKdCriterionConfig)
class LabelSmoothedSelfKdCriterion(LabelSmoothedTeacherCriterion):
    def __init__(self, task, cfg: LabelSmoothedSelfKdCriterionConfig):
        super().__init__(task, cfg)
        check_self_kd_flags(cfg)
        self.kind = str(cfg.self_kd_teacher)
        self.alpha_schedule = (cfg.self_kd_alpha, cfg.self_kd_start_update, cfg.self_kd_warmup_updates)
        self.teacher_term = TeacherTerm(cfg.self_kd_temperature, cfg.kd_teacher_topk, self.ignore_prefix_size)
        self.average = None
        if self.kind == "ema":
            self.average = MovingAverage(cfg.self_kd_ema_decay, cfg.self_kd_ema_start_update)
            self.restored = restored_checkpoint(cfg.save_dir, cfg.restore_file, cfg.checkpoint_suffix or "")
            relay_task_state(task, TASK_STATE_KEY, self.average.state)

    def teacher_weight(self) -> float:
        return skd_alpha(self.num_updates, *self.alpha_schedule)

    def add_teacher(self, data_loss, teacher_loss, weight):
        """L_data + alpha T^2 KL: the teacher term is added, as R-Drop adds its KL."""
        return data_loss + weight * teacher_loss

    def compute_loss_terms(self, model, sample, net_output, scores, target, reduce):
        if model.training:
            student = unwrapped(model)
            if self.average is not None:
                # Every training step, also while alpha is 0: the average follows from update 0.
                restored = self.restored_state() if self.average.teacher is None and self.num_updates > 0 else None
                self.average.follow(student, self.num_updates, restored)
                self.teacher_term.teacher = self.average.teacher
            else:
                self.teacher_term.teacher = DropoutTwin(student)
        return super().compute_loss_terms(model, sample, net_output, scores, target, reduce)

    def restored_state(self):
        """The moving average saved in the checkpoint this run resumed from (fairseq-train restores
        the model and the optimizer; the task state, where the average is, only this criterion)."""
        fix = (
            "a run with --self-kd-teacher ema resumes from a checkpoint it wrote (its moving average is "
            "saved there); start a new run, or one from these weights with --reset-optimizer "
            "--reset-lr-scheduler --reset-dataloader --reset-meters"
        )
        if not os.path.isfile(self.restored):
            raise FileNotFoundError(
                f"--self-kd-teacher ema: resuming at update {self.num_updates}, but {self.restored} is missing: {fix}"
            )
        state = torch.load(self.restored, map_location="cpu", weights_only=True)
        saved = saved_moving_average(state)
        if saved is None:
            raise ValueError(
                f"--self-kd-teacher ema: resuming at update {self.num_updates} from {self.restored}, which "
                f"holds no moving average: {fix}"
            )
        if saved["decay"] != self.average.decay:
            logger.warning(
                f"--self-kd-ema-decay {self.average.decay}: the average restored from {self.restored} was "
                f"built with {saved['decay']}; it goes on with {self.average.decay}"
            )
        logger.info(f"self-KD: the moving average of update {saved['updates']} restored from {self.restored}")
        return saved
