"""``--criterion label_smoothed_word_kd``: word-level knowledge distillation from a frozen teacher.

Per position: (1 - beta) L_data + beta T^2 KL(p_teacher^(T) || p_student^(T)), where L_data
is what ``label_smoothed_skd`` computes (fairseq's label-smoothed NLL while --skd-alpha
is 0, its default here). The teacher term is :class:`.teacher_term.TeacherTerm`; the
mathematics is in :mod:`skd_fairseq.distillation`.
"""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion
from omegaconf import II

from .teacher import TeacherEnsemble
from .teacher_term import (
    LabelSmoothedTeacherCriterion,
    LabelSmoothedTeacherCriterionConfig,
    TeacherTerm,
    open_teacher_cache,
)


@dataclass
class LabelSmoothedWordKdCriterionConfig(LabelSmoothedTeacherCriterionConfig):
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
    kd_teacher_cache: str = field(
        default="",
        metadata={
            "help": "a directory written by skd-fairseq-cache-teacher for the training split: "
            "read the teacher's top-K tokens per target position from it instead of running the "
            "teacher (no teacher is loaded); q is them, or the first --kd-teacher-topk of them, "
            "renormalised at --kd-temperature, as the online teacher with the same --kd-teacher-topk"
        },
    )
    train_subset: str = II("dataset.train_subset")


@register_criterion("label_smoothed_word_kd", dataclass=LabelSmoothedWordKdCriterionConfig)
class LabelSmoothedWordKdCriterion(LabelSmoothedTeacherCriterion):
    def __init__(self, task, cfg: LabelSmoothedWordKdCriterionConfig):
        super().__init__(task, cfg)
        check_teacher_flags(cfg)
        self.kd_weight = cfg.kd_weight
        cache = open_teacher_cache(cfg, task)
        # The teacher tokens kept per position: the flag, else the cache's K, else all of V.
        topk = cfg.kd_teacher_topk or (cache.topk if cache else 0)
        self.check_kept_tokens(cfg, topk or len(task.target_dictionary))
        self.teacher_term = TeacherTerm(cfg.kd_temperature, topk, self.ignore_prefix_size, cache=cache)
        self.teacher_term.teacher = self.build_teacher(cfg, task)

    def check_kept_tokens(self, cfg, kept: int) -> None:
        """Flags that depend on how many teacher tokens a position keeps (none here)."""

    def build_teacher(self, cfg, task):
        """The frozen teacher(s), loaded now, so a bad path or dictionary fails before any training;
        none with a cache."""
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
        return self.kd_weight


def check_teacher_flags(cfg) -> None:
    if not 0.0 <= cfg.kd_weight <= 1.0:
        raise ValueError(f"--kd-weight must be in [0, 1], got {cfg.kd_weight}")
    if not cfg.kd_temperature > 0:
        raise ValueError(f"--kd-temperature must be > 0, got {cfg.kd_temperature}")
