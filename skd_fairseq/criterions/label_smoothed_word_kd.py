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
from omegaconf import II

from ..distillation import cached_teacher_distribution, kl_to_teacher, mix_with_teacher, teacher_distribution
from .label_smoothed_skd import LabelSmoothedSkdCriterion, LabelSmoothedSkdCriterionConfig
from .teacher import TeacherEnsemble
from .teacher_cache import TeacherCache, attach_teacher_cache, cached_rows


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
            "help": "beta in [0, 1]: loss = (1 - beta) * student loss + beta * teacher term "
            "(T^2 * KL(teacher || student) at temperature T; 0 gives the student criterion alone)"
        },
    )
    kd_temperature: float = field(
        default=1.0,
        metadata={"help": "T > 0: both distributions are softmax(logits / T) in the teacher term"},
    )
    kd_teacher_topk: int = field(
        default=0,
        metadata={
            "help": "K >= 0: keep only the teacher's K most probable tokens per position, "
            "renormalised (bounds the KL's memory); 0 keeps the whole vocabulary, or with "
            "--kd-teacher-cache the K tokens the cache holds"
        },
    )
    kd_teacher_cache: str = field(
        default="",
        metadata={
            "help": "a directory written by skd-fairseq-cache-teacher for the training split: "
            "read the teacher's top-K tokens per target position from it instead of running the "
            "teacher (no teacher is loaded); q is them, or the first --kd-teacher-topk of them, "
            "renormalised at --kd-temperature, as the online teacher with the same --kd-teacher-topk"
        },
    )
    skd_alpha: float = field(
        default=0.0,
        metadata={
            "help": "weight of SKD inside the student loss, as in label_smoothed_skd; 0 (the "
            "default here) gives plain knowledge distillation"
        },
    )
    train_subset: str = II("dataset.train_subset")


@register_criterion("label_smoothed_word_kd", dataclass=LabelSmoothedWordKdCriterionConfig)
class LabelSmoothedWordKdCriterion(LabelSmoothedSkdCriterion):
    def __init__(self, task, cfg: LabelSmoothedWordKdCriterionConfig):
        super().__init__(task, cfg)
        self.check_teacher_flags(cfg)
        self.kd_weight = cfg.kd_weight
        self.kd_temperature = cfg.kd_temperature
        self.teacher_cache = self.open_teacher_cache(cfg, task)
        # The teacher tokens kept per position: the flag, else the cache's K, else all of V.
        self.kd_teacher_topk = cfg.kd_teacher_topk or (self.teacher_cache.topk if self.teacher_cache else 0)
        self.check_kept_tokens(cfg, self.kd_teacher_topk or len(task.target_dictionary))
        self.teacher = self.build_teacher(cfg, task)

    def check_teacher_flags(self, cfg) -> None:
        if not 0.0 <= cfg.kd_weight <= 1.0:
            raise ValueError(f"--kd-weight must be in [0, 1], got {cfg.kd_weight}")
        if not cfg.kd_temperature > 0:
            raise ValueError(f"--kd-temperature must be > 0, got {cfg.kd_temperature}")
        if cfg.kd_teacher_topk < 0:
            raise ValueError(f"--kd-teacher-topk must be >= 0 (0: whole vocabulary), got {cfg.kd_teacher_topk}")

    def check_kept_tokens(self, cfg, kept: int) -> None:
        """Flags that depend on how many teacher tokens a position keeps (none here)."""

    def open_teacher_cache(self, cfg, task):
        """The cache of --kd-teacher-cache (None without it), checked against the task, the
        training split's name and the flags now; against the split's samples when it loads."""
        if not cfg.kd_teacher_cache:
            return None
        cache = TeacherCache(cfg.kd_teacher_cache)
        cache.check_task(task)
        cache.check_split(task, cfg.train_subset)
        cache.check_topk(cfg.kd_teacher_topk, "--kd-teacher-topk")
        cache.check_temperature(cfg.kd_temperature)
        attach_teacher_cache(task, cache, task.target_dictionary.pad())
        return cache

    def build_teacher(self, cfg, task):
        """The frozen teacher(s), loaded now, so a bad path or dictionary fails before any training."""
        if self.teacher_cache is not None:
            if cfg.kd_teacher_path:
                raise ValueError(
                    "--kd-teacher-cache and --kd-teacher-path: here the cache replaces the teacher (every "
                    "teacher pass reads the gold prefixes); give only --kd-teacher-cache (no teacher is "
                    "loaded) or only --kd-teacher-path"
                )
            return None
        return TeacherEnsemble.from_checkpoints(cfg.kd_teacher_path, task)

    def teacher_weight(self) -> float:
        """beta of this step: 0 leaves the teacher out."""
        return self.kd_weight

    def compute_loss_terms(self, model, sample, net_output, scores, target, reduce):
        data_loss, nll_loss, training_log = super().compute_loss_terms(
            model, sample, net_output, scores, target, reduce
        )
        beta = self.teacher_weight() if model.training else 0.0  # validation: the student's plain loss
        if beta == 0:
            return data_loss, nll_loss, self.without_teacher_log(training_log, target.device)
        pad_mask = target.eq(self.padding_idx)
        teacher_loss, teacher_log = self.teacher_loss(model, sample, net_output, scores, pad_mask, reduce)
        training_log.update(teacher_log, kd_ntokens=(~pad_mask).sum())
        return mix_with_teacher(data_loss, teacher_loss, beta), nll_loss, training_log

    def without_teacher_log(self, training_log, device):
        """The log of a step without the teacher term (word-KD logs nothing for it)."""
        return training_log

    def teacher_loss(self, model, sample, net_output, scores, pad_mask, reduce):
        """L_teacher = T^2 KL, and its log entries. On an adaptive softmax the student's
        log-probabilities are those of the teacher's top K only (:meth:`Scores.kd_log_probs`)."""
        teacher_probs, teacher_ids = self.teacher_targets(model, sample, sample["net_input"])
        student = scores.kd_log_probs(teacher_ids, self.kd_temperature)
        kl = kl_to_teacher(student, teacher_probs, pad_mask=pad_mask, reduce=reduce)
        return self.kd_temperature**2 * kl, {"kd_kl": kl.detach().sum()}

    def teacher_targets(self, model, sample, net_input, teacher_encoder_outs=None, cached=True):
        """q for ``net_input``, flattened like the student's lprobs, on its device (fp32):
        read from the batch's cached rows with --kd-teacher-cache (where ``cached``: the
        teacher-forced pass on the gold prefixes), else from the teacher
        (``teacher_encoder_outs``: see :meth:`TeacherEnsemble.encode`)."""
        if cached and self.teacher_cache is not None:
            stored, ids = cached_rows(sample, self.teacher_cache.dtype, self.ignore_prefix_size)
            return cached_teacher_distribution(
                stored, ids, self.teacher_cache.temperature, self.kd_temperature, self.kd_teacher_topk
            )
        teacher_lprobs = self.teacher.log_probs(
            net_input, like=next(model.parameters()), encoder_outs=teacher_encoder_outs
        )
        return teacher_distribution(
            (self.flatten_like_target(t) for t in teacher_lprobs),
            self.kd_temperature,
            self.kd_teacher_topk,
        )

    def flatten_like_target(self, lprobs):
        """[B, T, V] -> [N, V] exactly as ``get_lprobs_and_target`` flattens the student's."""
        if self.ignore_prefix_size > 0:
            lprobs = lprobs[:, self.ignore_prefix_size :, :].contiguous()
        return lprobs.view(-1, lprobs.size(-1))

    # Training-only sums logged per target token: key -> divisor (log 2 turns nats into bits).
    PER_TOKEN_METRICS = {"kd_kl": math.log(2)}

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        ntokens = utils.item(sum(log.get("kd_ntokens", 0) for log in logging_outputs))
        if ntokens > 0:
            for key, divisor in cls.PER_TOKEN_METRICS.items():
                total = utils.item(sum(log.get(key, 0) for log in logging_outputs))
                metrics.log_scalar(key, total / ntokens / divisor, ntokens, round=4)
