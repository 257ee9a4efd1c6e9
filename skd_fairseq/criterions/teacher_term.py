"""The teacher term of the KD criteria, added to the student loss by composition.

:class:`TeacherTerm` says where the teacher's distribution q comes from (a frozen teacher, its
cache, or PS-KD's previous-epoch student) and computes T^2 KL(q || p_s^(T));
:class:`LabelSmoothedTeacherCriterion` mixes it into ``label_smoothed_skd``'s loss with the weight
its subclass gives each step. Word-level KD and TIE-KD hold a term built from their teacher flags,
PS-KD one whose teacher it replaces every epoch: no criterion inherits flags it must refuse.
The mathematics is in :mod:`skd_fairseq.distillation`.
"""

import math
from dataclasses import dataclass, field
from typing import Optional

from fairseq import utils
from fairseq.logging import metrics

from ..distillation import cached_teacher_distribution, kl_to_teacher, mix_with_teacher, teacher_distribution
from .label_smoothed_skd import LabelSmoothedSkdCriterion, LabelSmoothedSkdCriterionConfig
from .teacher import TeacherEnsemble
from .teacher_cache import TeacherCache, attach_teacher_cache, cached_rows


@dataclass
class LabelSmoothedTeacherCriterionConfig(LabelSmoothedSkdCriterionConfig):
    """The flags every criterion with a teacher term takes (word-KD, TIE-KD, PS-KD)."""

    kd_teacher_topk: int = field(
        default=0,
        metadata={
            "help": "K >= 0: keep only the teacher's K most probable tokens per position, "
            "renormalised (bounds the KL's memory); 0 keeps the whole vocabulary, or with "
            "--kd-teacher-cache the K tokens the cache holds"
        },
    )
    skd_alpha: float = field(
        default=0.0,
        metadata={
            "help": "weight of SKD inside the student loss, as in label_smoothed_skd; 0 (the "
            "default here) gives plain knowledge distillation"
        },
    )


class TeacherTerm:
    """L_teacher = T^2 KL(q || p_s^(T)) over the target positions, q from ``teacher`` (a
    :class:`TeacherEnsemble`, or None while there is none) or, in the teacher-forced pass, from
    ``cache`` (a :class:`TeacherCache` whose rows each training batch carries).

    ``topk``: the teacher tokens kept per position (0: all of V); ``ignore_prefix_size``: the
    criterion's, so q is flattened like the student's log-probabilities.
    """

    def __init__(self, temperature: float, topk: int, ignore_prefix_size: int, teacher=None, cache=None):
        self.temperature, self.topk, self.ignore_prefix_size = temperature, topk, ignore_prefix_size
        self.teacher: Optional[TeacherEnsemble] = teacher
        self.cache: Optional[TeacherCache] = cache

    def targets(self, model, sample, net_input, encoder_outs=None, cached=True):
        """(q, ids) for ``net_input``, flattened like the student's lprobs, on its device (fp32):
        read from the batch's cached rows when there is a cache and ``cached`` (the teacher-forced
        pass on the gold prefixes), else from the teacher (``encoder_outs``: see
        :meth:`TeacherEnsemble.encode`)."""
        if cached and self.cache is not None:
            stored, ids = cached_rows(sample, self.cache.dtype, self.ignore_prefix_size)
            return cached_teacher_distribution(stored, ids, self.cache.temperature, self.temperature, self.topk)
        lprobs = self.teacher.log_probs(net_input, like=next(model.parameters()), encoder_outs=encoder_outs)
        return teacher_distribution((self.flatten_like_target(t) for t in lprobs), self.temperature, self.topk)

    def flatten_like_target(self, lprobs):
        """[B, T, V] -> [N, V] exactly as ``get_lprobs_and_target`` flattens the student's."""
        if self.ignore_prefix_size > 0:
            lprobs = lprobs[:, self.ignore_prefix_size :, :].contiguous()
        return lprobs.view(-1, lprobs.size(-1))

    def prepare(self, model, sample, scores):
        """The teacher's (q, ids) of this step, computed before the student's data term and
        announced to ``scores``: an adaptive softmax groups their positions with the gold words'
        in one sync. Pass them to :meth:`loss`."""
        q, ids = self.targets(model, sample, sample["net_input"])
        if ids is not None:
            scores.expect(ids)
        return q, ids

    def loss(self, model, sample, scores, pad_mask, reduce, prepared=None):
        """(T^2 KL, log entries), from ``prepared`` (:meth:`prepare`) or the teacher now. On an
        adaptive softmax the student's log-probabilities are those of the teacher's top K only
        (:meth:`Scores.kd_log_probs`)."""
        q, ids = prepared if prepared is not None else self.targets(model, sample, sample["net_input"])
        student = scores.kd_log_probs(ids, self.temperature)
        kl = kl_to_teacher(student, q, pad_mask=pad_mask, reduce=reduce)
        return self.temperature**2 * kl, {"kd_kl": kl.detach().sum()}


def open_teacher_cache(cfg, task) -> Optional[TeacherCache]:
    """The cache of --kd-teacher-cache (None without it), checked against the task, the training
    split's name and the flags now, and attached to the task, which checks it against the split's
    samples when fairseq loads it (before the first step)."""
    if not cfg.kd_teacher_cache:
        return None
    cache = TeacherCache(cfg.kd_teacher_cache)
    cache.check_task(task)
    cache.check_split(task, cfg.train_subset)
    cache.check_topk(cfg.kd_teacher_topk, "--kd-teacher-topk")
    cache.check_temperature(cfg.kd_temperature)
    attach_teacher_cache(task, cache, task.target_dictionary.pad())
    return cache


class LabelSmoothedTeacherCriterion(LabelSmoothedSkdCriterion):
    """(1 - beta) L_data + beta L_teacher, L_data ``label_smoothed_skd``'s loss and L_teacher
    ``self.teacher_term``'s; a subclass builds the term and says beta (:meth:`teacher_weight`)."""

    teacher_term: TeacherTerm

    def __init__(self, task, cfg: LabelSmoothedTeacherCriterionConfig):
        super().__init__(task, cfg)
        if cfg.kd_teacher_topk < 0:
            raise ValueError(f"--kd-teacher-topk must be >= 0 (0: whole vocabulary), got {cfg.kd_teacher_topk}")

    @property
    def teacher(self) -> Optional[TeacherEnsemble]:
        return self.teacher_term.teacher

    @property
    def teacher_cache(self) -> Optional[TeacherCache]:
        return self.teacher_term.cache

    def teacher_weight(self) -> float:
        """beta of this step: 0 leaves the teacher out."""
        raise NotImplementedError

    def compute_loss_terms(self, model, sample, net_output, scores, target, reduce):
        beta = self.teacher_weight() if model.training else 0.0  # validation: the student's plain loss
        prepared = None
        if beta != 0 and scores.groups_positions:
            prepared = self.teacher_term.prepare(model, sample, scores)
        data_loss, nll_loss, training_log = super().compute_loss_terms(
            model, sample, net_output, scores, target, reduce
        )
        training_log["kd_weight"] = beta  # a float: logging it costs no device sync
        if beta == 0:
            return data_loss, nll_loss, self.without_teacher_log(training_log, target.device)
        pad_mask = target.eq(self.padding_idx)
        teacher_loss, teacher_log = self.teacher_loss(model, sample, net_output, scores, pad_mask, reduce, prepared)
        training_log.update(teacher_log, kd_ntokens=(~pad_mask).sum())
        return self.add_teacher(data_loss, teacher_loss, beta), nll_loss, training_log

    def add_teacher(self, data_loss, teacher_loss, weight):
        """The loss with the teacher term: (1 - beta) L_data + beta L_teacher (word-level KD's mix)."""
        return mix_with_teacher(data_loss, teacher_loss, weight)

    def without_teacher_log(self, training_log, device):
        """The log of a step without the teacher term (word-KD logs nothing for it)."""
        return training_log

    def teacher_loss(self, model, sample, net_output, scores, pad_mask, reduce, prepared=None):
        """(L_teacher, log entries); ``prepared``: the teacher's (q, ids) when computed before the
        data term (:meth:`TeacherTerm.prepare`)."""
        return self.teacher_term.loss(model, sample, scores, pad_mask, reduce, prepared)

    # Training-only sums logged per target token: key -> divisor (log 2 turns nats into bits).
    PER_TOKEN_METRICS = {"kd_kl": math.log(2)}

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        batches = sum(log.get("skd_batches", 0) for log in logging_outputs)
        if batches > 0:  # the teacher term's weight this step (beta, or self-KD's alpha_t), per batch
            weight = sum(log.get("kd_weight", 0) for log in logging_outputs)
            metrics.log_scalar("kd_weight", utils.item(weight) / batches, round=4)
        ntokens = utils.item(sum(log.get("kd_ntokens", 0) for log in logging_outputs))
        if ntokens > 0:
            for key, divisor in cls.PER_TOKEN_METRICS.items():
                total = utils.item(sum(log.get(key, 0) for log in logging_outputs))
                metrics.log_scalar(key, total / ntokens / divisor, ntokens, round=4)
