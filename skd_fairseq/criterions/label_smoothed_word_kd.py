"""``--criterion label_smoothed_word_kd``: word-level knowledge distillation from a frozen teacher.

Per position: (1 - beta) L_data + beta T^2 KL(p_teacher^(T) || p_student^(T)), where L_data
is what ``label_smoothed_skd`` computes (fairseq's label-smoothed NLL while --skd-alpha
is 0, its default here). The mathematics is in :mod:`skd_fairseq.distillation`.
"""

import math
from dataclasses import dataclass, field

from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.logging import metrics

from ..distillation import kl_to_teacher, mix_with_teacher, teacher_distribution, tempered_log_probs
from .label_smoothed_skd import LabelSmoothedSkdCriterion, LabelSmoothedSkdCriterionConfig
from .teacher import TeacherEnsemble


@dataclass
class LabelSmoothedWordKdCriterionConfig(LabelSmoothedSkdCriterionConfig):
    kd_teacher_path: str = field(
        default="",
        metadata={
            "help": "teacher checkpoint, or several separated by ':' (an ensemble, averaged in "
            "probability space); same task and dictionaries as the student; frozen"
        },
    )
    kd_weight: float = field(
        default=0.5,
        metadata={
            "help": "beta in [0, 1]: loss = (1 - beta) * student loss + beta * T^2 * "
            "KL(teacher || student) at temperature T (0 gives the student criterion alone)"
        },
    )
    kd_temperature: float = field(
        default=1.0,
        metadata={"help": "T > 0: both distributions are softmax(logits / T) in the KL term"},
    )
    kd_teacher_topk: int = field(
        default=0,
        metadata={
            "help": "K >= 0: keep only the teacher's K most probable tokens per position, "
            "renormalised (bounds the KL's memory); 0 keeps the whole vocabulary"
        },
    )
    skd_alpha: float = field(
        default=0.0,
        metadata={
            "help": "weight of SKD inside the student loss, as in label_smoothed_skd; 0 (the "
            "default here) gives plain word-level KD"
        },
    )


@register_criterion("label_smoothed_word_kd", dataclass=LabelSmoothedWordKdCriterionConfig)
class LabelSmoothedWordKdCriterion(LabelSmoothedSkdCriterion):
    def __init__(self, task, cfg: LabelSmoothedWordKdCriterionConfig):
        super().__init__(task, cfg)
        if not 0.0 <= cfg.kd_weight <= 1.0:
            raise ValueError(f"--kd-weight must be in [0, 1], got {cfg.kd_weight}")
        if not cfg.kd_temperature > 0:
            raise ValueError(f"--kd-temperature must be > 0, got {cfg.kd_temperature}")
        if cfg.kd_teacher_topk < 0:
            raise ValueError(
                f"--kd-teacher-topk must be >= 0 (0: whole vocabulary), got {cfg.kd_teacher_topk}"
            )
        self.kd_weight = cfg.kd_weight
        self.kd_temperature = cfg.kd_temperature
        self.kd_teacher_topk = cfg.kd_teacher_topk
        # Loaded now, so a bad path or dictionary fails before any training.
        self.teacher = TeacherEnsemble(cfg.kd_teacher_path, task)

    def compute_loss_terms(self, model, sample, lprobs, target, reduce):
        data_loss, nll_loss, training_log = super().compute_loss_terms(
            model, sample, lprobs, target, reduce
        )
        if not model.training or self.kd_weight == 0:  # validation: the student's plain loss
            return data_loss, nll_loss, training_log
        teacher_probs, teacher_ids = teacher_distribution(
            (self.flatten_like_target(t) for t in self.teacher_log_probs(model, sample)),
            self.kd_temperature,
            self.kd_teacher_topk,
        )
        pad_mask = target.eq(self.padding_idx)
        kl = kl_to_teacher(
            tempered_log_probs(lprobs, self.kd_temperature), teacher_probs, teacher_ids,
            pad_mask=pad_mask, reduce=reduce,
        )
        loss = mix_with_teacher(data_loss, kl, self.kd_weight, self.kd_temperature)
        training_log.update(kd_kl=kl.detach().sum(), kd_ntokens=(~pad_mask).sum())
        return loss, nll_loss, training_log

    def teacher_log_probs(self, model, sample):
        """The teachers' log-probabilities for ``sample``, on the student's device and dtype."""
        return self.teacher.log_probs(sample, like=next(model.parameters()))

    def flatten_like_target(self, lprobs):
        """[B, T, V] -> [N, V] exactly as ``get_lprobs_and_target`` flattens the student's."""
        if self.ignore_prefix_size > 0:
            lprobs = lprobs[:, self.ignore_prefix_size :, :].contiguous()
        return lprobs.view(-1, lprobs.size(-1))

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        ntokens = utils.item(sum(log.get("kd_ntokens", 0) for log in logging_outputs))
        if ntokens > 0:
            kl = utils.item(sum(log.get("kd_kl", 0) for log in logging_outputs))
            metrics.log_scalar("kd_kl", kl / ntokens / math.log(2), ntokens, round=4)
