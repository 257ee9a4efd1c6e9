"""``--criterion label_smoothed_tie_kd``: TIE-KD (Zhang et al., ACL 2023) on top of word-level KD.

L_teacher = (1/n) sum over n decoder passes of (T^2 KL + L_rank). Pass 1 is the usual
teacher-forced pass; pass m+1 feeds the student decoder its own greedy predictions of
pass m (the teacher's decoder is re-run on the same prefix; the student's and the
teacher's encoders run once per step). L_rank is
:func:`skd_fairseq.distillation.tie_ranking_loss`.
"""

from dataclasses import dataclass, field

import torch
from fairseq.criterions import register_criterion
from fairseq.models import FairseqEncoderDecoderModel
from torch.nn.parallel import DistributedDataParallel

from ..distillation import kl_to_teacher, tempered_log_probs, tie_ranking_loss
from .fairseq_access import decode_prefix, encode_source
from .label_smoothed_word_kd import LabelSmoothedWordKdCriterion, LabelSmoothedWordKdCriterionConfig
from .teacher import TeacherEnsemble, registered_task_name


@dataclass
class LabelSmoothedTieKdCriterionConfig(LabelSmoothedWordKdCriterionConfig):
    tie_topk: int = field(
        default=10,
        metadata={
            "help": "k >= 1: the ranking loss orders the teacher's and the student's top-k tokens "
            "(at most --kd-teacher-topk when that is set)"
        },
    )
    tie_iterations: int = field(
        default=1,
        metadata={
            "help": "n >= 1 decoder passes; pass m+1 feeds the student its greedy predictions of "
            "pass m, and the teacher terms are averaged over the passes (translation only for n > 1)"
        },
    )


@register_criterion("label_smoothed_tie_kd", dataclass=LabelSmoothedTieKdCriterionConfig)
class LabelSmoothedTieKdCriterion(LabelSmoothedWordKdCriterion):
    PER_TOKEN_METRICS = {**LabelSmoothedWordKdCriterion.PER_TOKEN_METRICS, "tie_rank": 1.0}  # probabilities

    def __init__(self, task, cfg: LabelSmoothedTieKdCriterionConfig):
        # Flags first: loading the teacher takes a while.
        if cfg.tie_iterations < 1:
            raise ValueError(f"--tie-iterations must be >= 1, got {cfg.tie_iterations}")
        if cfg.tie_iterations > 1 and registered_task_name(task) == "language_modeling":
            raise ValueError(
                "--tie-iterations > 1 re-runs a translation decoder on its own predictions; "
                "use --tie-iterations 1 for language modelling"
            )
        super().__init__(task, cfg)
        self.tie_topk = cfg.tie_topk
        self.tie_iterations = cfg.tie_iterations
        self._later_passes = None

    def check_kept_tokens(self, cfg, kept: int) -> None:
        if not 1 <= cfg.tie_topk <= kept:
            raise ValueError(
                f"--tie-topk must be in [1, {kept}] (the teacher tokens kept by --kd-teacher-topk, "
                f"else those --kd-teacher-cache holds, else the vocabulary), got {cfg.tie_topk}"
            )

    def build_teacher(self, cfg, task):
        """With --kd-teacher-cache the first pass reads the cache; the later passes feed the
        student's own predictions, which no cache holds, and run the teacher of --kd-teacher-path
        (checked to be the cache's)."""
        if self.teacher_cache is None or cfg.tie_iterations == 1:
            return super().build_teacher(cfg, task)
        if not cfg.kd_teacher_path:
            raise ValueError(
                f"--kd-teacher-cache with --tie-iterations {cfg.tie_iterations}: passes 2 to "
                f"{cfg.tie_iterations} decode the student's own predictions, which no cache holds; give "
                "the teacher too (--kd-teacher-path, the checkpoint(s) the cache was built from), or "
                "--tie-iterations 1"
            )
        self.teacher_cache.check_teachers(cfg.kd_teacher_path.split(":"), "--kd-teacher-path")
        return TeacherEnsemble.from_checkpoints(cfg.kd_teacher_path, task)

    def student_forward(self, model, sample):
        if not (model.training and self.tie_iterations > 1 and self.kd_weight > 0):
            return super().student_forward(model, sample)
        wrappers = [model]  # fairseq wraps models for distributed training, sometimes twice
        while hasattr(wrappers[-1], "module"):
            wrappers.append(wrappers[-1].module)
        if any(isinstance(m, DistributedDataParallel) for m in wrappers):
            # Later passes call the decoder directly, outside DDP's forward, which would
            # leave its gradient reduction unprepared; legacy_ddp reduces after backward.
            raise ValueError(
                "--tie-iterations > 1 runs the decoder several times per step, which torch's "
                "DistributedDataParallel does not support: train with --ddp-backend legacy_ddp"
            )
        if not isinstance(wrappers[-1], FairseqEncoderDecoderModel):
            raise ValueError(
                f"--tie-iterations > 1 needs an encoder-decoder model, got {type(wrappers[-1]).__name__}; "
                "use --tie-iterations 1"
            )
        net_input, student = sample["net_input"], wrappers[-1]
        encoder_out = encode_source(student, net_input)
        # Kept for the later passes of this step, which reuse the encoder (as the authors do).
        self._later_passes = (student.decoder, encoder_out)
        return decode_prefix(student.decoder, net_input["prev_output_tokens"], encoder_out, net_input)

    def teacher_loss(self, model, sample, net_output, scores, pad_mask, reduce, prepared=None):
        # prepared is always None here: only an adaptive softmax prepares, which TIE-KD refuses.
        lprobs = scores.full_log_probs("TIE-KD's ranking loss")
        later_passes, self._later_passes = self._later_passes, None
        net_input = dict(sample["net_input"])
        # Every pass decodes the same source: the teachers encode it once per step.
        teacher_encoder_outs = (
            self.teacher.encode(net_input, like=next(model.parameters())) if self.tie_iterations > 1 else None
        )
        term = self.teacher_term
        total = kl_sum = rank_sum = 0.0
        for iteration in range(self.tie_iterations):
            if iteration > 0:
                decoder, encoder_out = later_passes
                net_input["prev_output_tokens"] = self.greedy_decoder_input(net_input["prev_output_tokens"], net_output)
                net_output = decode_prefix(decoder, net_input["prev_output_tokens"], encoder_out, net_input)
                lprobs = self.scores_and_target(model, net_output, sample)[0].full_log_probs("TIE-KD's ranking loss")
            teacher_probs, teacher_ids = term.targets(
                model, sample, net_input, teacher_encoder_outs, cached=iteration == 0
            )
            student = tempered_log_probs(lprobs, term.temperature)
            kl = kl_to_teacher(student, teacher_probs, teacher_ids, pad_mask=pad_mask, reduce=reduce)
            rank = tie_ranking_loss(
                student.exp(), teacher_probs, teacher_ids, self.tie_topk, pad_mask=pad_mask, reduce=reduce
            )
            total = total + term.temperature**2 * kl + rank
            kl_sum = kl_sum + kl.detach().sum()
            rank_sum = rank_sum + rank.detach().sum()
        n = self.tie_iterations
        return total / n, {"kd_kl": kl_sum / n, "tie_rank": rank_sum / n}

    def greedy_decoder_input(self, prev_output_tokens, net_output):
        """[first token, the student's argmax predictions shifted right]; padding stays padding."""
        with torch.no_grad():
            predictions = net_output[0].argmax(dim=-1)
            shifted = torch.cat([prev_output_tokens[:, :1], predictions[:, :-1]], dim=1)
            return shifted.masked_fill(prev_output_tokens.eq(self.padding_idx), self.padding_idx)
