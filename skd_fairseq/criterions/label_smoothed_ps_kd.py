"""``--criterion label_smoothed_ps_kd``: progressive self-knowledge distillation (PS-KD).

Kim et al., "Self-Knowledge Distillation with Progressive Refinement of Targets" (ICCV 2021):
in epoch t the target is (1 - a_t) y_ls + a_t p_{t-1}(x), with p_{t-1} the model of the end of
epoch t - 1 and a_t = a_T * t / T over T epochs (:func:`skd_fairseq.schedule.progressive_alpha`).
The cross-entropy to that target is (1 - a_t) L_ls + a_t CE(p_{t-1}, p), which is word-level KD
(:mod:`.label_smoothed_word_kd`) with beta = a_t, T = 1 and the previous epoch's student as the
frozen teacher: this criterion computes its loss as (1 - a_t) L_ls + a_t KL(p_{t-1} || p), which
differs from the cross-entropy by the constant a_t H(p_{t-1}) only (the same gradient). It holds
the same teacher term as word-KD (:class:`.teacher_term.TeacherTerm`, T = 1), not word-KD's flags:
its teacher, weight and temperature are its own.

The teacher is a frozen copy of the student taken at every epoch boundary (one more model in
memory, one more forward per step, no backward). Caching p_{t-1} instead would store a
V-dimensional distribution per training token (Multi30k: about 380k target tokens x 8,000 words,
12 GB in fp32), and a top-K cache is no longer the paper's target: so the model is kept.
"""

import logging
from dataclasses import dataclass, field

import torch
from fairseq.criterions import register_criterion
from omegaconf import II

from ..schedule import check_progressive_alpha, progressive_alpha
from .fairseq_access import relay_begin_epoch
from .teacher import TeacherEnsemble, epoch_end_weights
from .teacher_term import LabelSmoothedTeacherCriterion, LabelSmoothedTeacherCriterionConfig, TeacherTerm

logger = logging.getLogger(__name__)


@dataclass
class LabelSmoothedPsKdCriterionConfig(LabelSmoothedTeacherCriterionConfig):
    ps_kd_alpha: float = field(
        default=0.8,
        metadata={
            "help": "a_T in [0, 1]: in epoch t of T (--max-epoch) the target is (1 - a_t) * label-smoothed "
            "one-hot + a_t * the previous epoch's prediction, a_t = a_T * t / T (0 in epoch 1)"
        },
    )
    max_epoch: int = II("optimization.max_epoch")
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    checkpoint_suffix: str = II("checkpoint.checkpoint_suffix")


@register_criterion("label_smoothed_ps_kd", dataclass=LabelSmoothedPsKdCriterionConfig)
class LabelSmoothedPsKdCriterion(LabelSmoothedTeacherCriterion):
    def __init__(self, task, cfg: LabelSmoothedPsKdCriterionConfig):
        super().__init__(task, cfg)
        check_progressive_alpha(cfg.ps_kd_alpha, cfg.max_epoch)
        # The first epoch has no teacher; begin_epoch takes one from the second on.
        self.teacher_term = TeacherTerm(1.0, cfg.kd_teacher_topk, self.ignore_prefix_size)
        self.alpha_final = cfg.ps_kd_alpha
        self.max_epoch = cfg.max_epoch
        self.checkpoints = (cfg.save_dir, cfg.restore_file, cfg.checkpoint_suffix or "")
        self.epoch = None  # the epoch being trained; None before fairseq begins one
        self._epoch_trained_here = None  # the last epoch this process began
        relay_begin_epoch(task, self)

    def teacher_weight(self) -> float:
        if self.epoch is None or self.teacher is None:
            return 0.0
        return progressive_alpha(self.epoch, self.alpha_final, self.max_epoch)

    def begin_epoch(self, epoch: int, model) -> None:
        """Called by fairseq (through the task) before epoch ``epoch`` trains, with the unwrapped
        model. From epoch 2 on the teacher becomes the model of the end of epoch - 1: the weights
        in memory when this process trained that epoch, and on a resume the weights that the
        checkpoint fairseq restored from held at that epoch's end (:func:`epoch_end_weights`)."""
        resumed = self._epoch_trained_here != epoch - 1
        self.epoch, self._epoch_trained_here = epoch, epoch
        if epoch <= 1:
            self.teacher_term.teacher = None
            return
        state, source = None, "the weights at the end of the previous epoch"
        if resumed:
            state, source = epoch_end_weights(epoch, *self.checkpoints)
        if self.teacher is None:
            self.teacher_term.teacher = TeacherEnsemble.from_model(model)
        if state is None:
            state = model.state_dict()
        with torch.no_grad():
            self.teacher.load_weights(state)
        logger.info(f"PS-KD: epoch {epoch} learns from {source} with a_t = {self.teacher_weight():.4f}")

    def without_teacher_log(self, training_log, device):
        zero = torch.zeros((), device=device)
        return dict(training_log, kd_kl=zero, kd_ntokens=zero)
