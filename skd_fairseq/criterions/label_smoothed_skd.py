"""``--criterion label_smoothed_skd``: label-smoothed cross-entropy mixed with self-knowledge distillation.

A thin adapter: it gathers log-probabilities, targets and the output embedding, picks
the candidates, and calls the pure functions of :mod:`skd_fairseq.losses`.
"""

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.dataclass.constants import DDP_BACKEND_CHOICES
from fairseq.logging import metrics
from omegaconf import II

from ..losses import skd_loss_from_entries, soft_targets_from_similarities, top1_distance_loss
from ..schedule import skd_alpha
from ..settings import (
    ADAPTIVE_CANDIDATES,
    CANDIDATE_MODES,
    DEFAULT_GOLD_MASS,
    DEFAULT_WEIGHT_MAX,
    WEIGHTINGS,
    skd_settings,
)
from ..similarity import SIMILARITIES
from .adaptive_softmax import AdaptiveScores, adaptive_softmax_of
from .candidate_state import CandidatePicker
from .fairseq_access import excluded_token_ids, output_embedding, relay_num_updates
from .scores import FullScores


@dataclass
class LabelSmoothedSkdCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    skd_alpha: float = field(
        default=0.5,
        metadata={
            "help": "alpha_max in [0, 1]: weight of the SKD loss once warmed up; "
            "loss = (1 - alpha) * label-smoothed NLL + alpha * SKD cross-entropy "
            "(0 gives label_smoothed_cross_entropy)"
        },
    )
    skd_start_update: int = field(
        default=0,
        metadata={"help": "alpha is 0 before this many updates (>= 0)"},
    )
    skd_warmup_updates: int = field(
        default=0,
        metadata={
            "help": "alpha rises linearly from the start update to --skd-alpha over this "
            "many updates (>= 0; 0 switches it on at once)"
        },
    )
    skd_topk: int = field(
        default=8,
        metadata={"help": "k: candidate tokens besides the gold token in the soft target (>= 1)"},
    )
    skd_candidates: ChoiceEnum(CANDIDATE_MODES) = field(
        default="neighbours",
        metadata={
            "help": "neighbours: the k tokens whose output embeddings are most similar to the "
            "gold token's; predicted: the k tokens the model currently ranks highest (the "
            "paper's cheap approximation); random: k tokens drawn uniformly at every step (a "
            "control: smoothing towards tokens that are not neighbours). Special symbols and "
            "the gold token never count."
        },
    )
    skd_similarity: ChoiceEnum(SIMILARITIES) = field(
        default="cosine",
        metadata={
            "help": "similarity of output embeddings for neighbours and soft targets: "
            "cosine, l2 (-squared distance) or dot"
        },
    )
    skd_temperature: Optional[float] = field(
        default=None,
        metadata={
            "help": "tau > 0: q = softmax(similarity / tau) over [gold, candidates], a fixed temperature "
            f"instead of the default gold mass {DEFAULT_GOLD_MASS}"
        },
    )
    skd_gold_mass: Optional[float] = field(
        default=None,
        metadata={
            "help": "rho in (1/(k+1), 1): tau is solved at every position so that q puts exactly rho on "
            f"the gold token (cosine or l2 similarity); default {DEFAULT_GOLD_MASS}, the setting chosen on "
            "Multi30k's validation split, unless --skd-temperature is given"
        },
    )
    skd_weighting: ChoiceEnum(WEIGHTINGS) = field(
        default="softmax",
        metadata={
            "help": "softmax: the soft target q = softmax(similarity / tau) over the gold token and its "
            "k candidates; distance: the top-1 reading of the public SKD code, with --skd-candidates "
            "predicted --skd-topk 1: yhat = the model's most probable token (the gold token "
            "included), w = min(--skd-weight-max, exp(-sigma |e_y - e_yhat|^2)) without gradient, "
            "loss = (1 - alpha w) L_ls + alpha w (-log p(yhat))"
        },
    )
    skd_sigma: Optional[float] = field(
        default=None,
        metadata={
            "help": "sigma > 0 of --skd-weighting distance (required there): the rate at which the "
            "weight falls with the squared Euclidean distance of the output embeddings"
        },
    )
    skd_weight_max: Optional[float] = field(
        default=None,
        metadata={
            "help": f"w_max in (0, 1] of --skd-weighting distance: the cap on the weight w "
            f"(default {DEFAULT_WEIGHT_MAX}, the public code's)"
        },
    )
    skd_adaptive_candidates: Optional[ChoiceEnum(ADAPTIVE_CANDIDATES)] = field(
        default=None,
        metadata={
            "help": "on an adaptive softmax only: cluster (its default) draws a position's candidates "
            "from its gold word's own cluster, so SKD needs only the tail adaptive_loss computes; any "
            "lets them lie in any cluster (every tail for nearly every position)"
        },
    )
    skd_neighbour_refresh: int = field(
        default=50,
        metadata={
            "help": "with --skd-candidates neighbours: recompute the neighbour table of the whole "
            "vocabulary every R updates (>= 0); 0 finds the exact neighbours of each batch's "
            "gold tokens at every step (one device sync per step)"
        },
    )
    skd_exclude_unseen: bool = field(
        default=False,
        metadata={
            "help": "candidates only among tokens already seen as a training target: the default with "
            "--skd-weighting softmax; with distance weighting, the top-1 prediction among them too. With a "
            "joined dictionary, source-only pieces are never targets, and SKD alone would train their "
            "output embeddings towards the gold tokens they are candidates of (costs a device sync at "
            "each neighbour-table refresh, and with random or predicted candidates in the first steps "
            "only, until every candidate pool holds k + 1 seen tokens)"
        },
    )
    skd_include_unseen: bool = field(
        default=False,
        metadata={
            "help": "candidates among every token, also those never seen as a training target (the "
            "default of --skd-weighting distance, which reads the public code's argmax over every token)"
        },
    )
    seed: int = II("common.seed")
    ddp_backend: DDP_BACKEND_CHOICES = II("distributed_training.ddp_backend")


@register_criterion("label_smoothed_skd", dataclass=LabelSmoothedSkdCriterionConfig)
class LabelSmoothedSkdCriterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, cfg: LabelSmoothedSkdCriterionConfig):
        super().__init__(
            task,
            cfg.sentence_avg,
            cfg.label_smoothing,
            ignore_prefix_size=cfg.ignore_prefix_size,
            report_accuracy=cfg.report_accuracy,
        )
        dictionary = task.target_dictionary
        excluded = excluded_token_ids(dictionary)
        self.settings = skd_settings(cfg, len(dictionary), len(excluded))
        self.vocab_size = len(dictionary)
        self.candidates = CandidatePicker(self.settings, len(dictionary), excluded, self.padding_idx, cfg.seed)
        self._candidates_checked = False
        self.ddp_backend = str(cfg.ddp_backend)
        self.num_updates = 0
        relay_num_updates(task)

    def set_num_updates(self, num_updates: int) -> None:
        """The trainer's update count (updates already applied); fed by ``relay_num_updates``."""
        self.num_updates = num_updates

    def current_alpha(self) -> float:
        s = self.settings
        return skd_alpha(self.num_updates, s.alpha_max, s.start_update, s.warmup_updates)

    def forward(self, model, sample, reduce=True):
        net_output = self.student_forward(model, sample)
        scores, target = self.scores_and_target(model, net_output, sample)
        loss, nll_loss, training_log = self.compute_loss_terms(model, sample, net_output, scores, target, reduce)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
        }
        if model.training:
            logging_output.update(training_log)
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            logging_output["n_correct"] = utils.item(n_correct.data)
            logging_output["total"] = utils.item(total.data)
        return loss, sample_size, logging_output

    def student_forward(self, model, sample):
        return model(**sample["net_input"])

    def scores_and_target(self, model, net_output, sample):
        """(:class:`Scores`, flattened target): fairseq's lprobs [N, V] with the output embedding,
        or on an adaptive softmax :class:`AdaptiveScores`, which never builds [N, V]."""
        softmax = adaptive_softmax_of(model)
        if softmax is None:
            if self.settings.adaptive_candidates is not None:
                raise ValueError(
                    f"--skd-adaptive-candidates {self.settings.adaptive_candidates}: this model has a full "
                    "softmax, with no clusters to keep candidates in; leave the flag out (it is for models "
                    "trained with --adaptive-softmax-cutoff)"
                )
            lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
            return FullScores(lprobs, lambda: output_embedding(model, self.vocab_size)), target
        self.check_adaptive_softmax()
        target = model.get_targets(sample, net_output).view(-1)
        scores = AdaptiveScores(softmax, net_output[0], target, self.settings.adaptive_candidates or "cluster")
        if not self._candidates_checked:  # the clusters are known from the first batch on
            scores.check_candidates(self.settings.topk, self.candidates.excluded_ids)
            self._candidates_checked = True
        return scores, target

    def check_adaptive_softmax(self):
        if self.eps > 0:
            raise ValueError(
                f"--label-smoothing {self.eps} on an adaptive softmax: its smoothing term needs the "
                "sum of log p over the whole vocabulary, which this criterion does not compute there. "
                "Use --label-smoothing 0 (fairseq's adaptive_loss recipes train without smoothing)."
            )
        if self.ignore_prefix_size > 0 or self.report_accuracy:
            raise ValueError(
                "--ignore-prefix-size and --report-accuracy are not supported with an adaptive softmax; "
                "leave them unset"
            )
        if self.ddp_backend in ("c10d", "pytorch_ddp") and torch.distributed.is_initialized():
            raise ValueError(
                "an adaptive softmax leaves the tail clusters no batch needs without gradients, which "
                "torch DistributedDataParallel refuses (as fairseq's adaptive_loss does): pass "
                "--ddp-backend legacy_ddp"
            )

    def compute_loss_terms(self, model, sample, net_output, scores, target, reduce):
        """(loss, nll_loss, training-only log entries) for flattened ``scores`` and target [N]."""
        # Validation reports the plain label-smoothed loss, so runs stay comparable.
        alpha = self.current_alpha() if model.training else 0.0
        if model.training:
            self.candidates.observe(target, self.num_updates)  # also before SKD starts
        skd_log = None
        if alpha > 0:
            loss, nll_loss, skd_log = self.compute_skd_loss(scores, target, alpha, reduce)
        if skd_log is None:  # no SKD term in this step
            loss, nll_loss = scores.data_loss(target, self.eps, self.padding_idx, reduce)
            skd_log = self.empty_skd_log(target.device)
        # Same keys on every rank, micro-batch and update, so fairseq can sum them (its fast
        # stat sync all-reduces one buffer per key set, built from the first micro-batch's keys).
        return loss, nll_loss, dict(skd_alpha=alpha, skd_batches=1, **skd_log)

    def empty_skd_log(self, device):
        if self.settings.weighting == "distance":
            keys = ["skd_loss", "skd_weight", "skd_top1_gold", "skd_ntokens"]
        else:
            keys = ["skd_loss", "skd_gold_q", "skd_ntokens"]
            keys += ["skd_tau", "skd_tau_ntokens"] if self.settings.gold_mass is not None else []
        return {key: torch.zeros((), device=device) for key in keys}

    def compute_skd_loss(self, scores, target, alpha, reduce):
        """(loss, nll_loss, log entries) with the SKD term, or Nones while --skd-exclude-unseen
        has seen fewer than k + 1 distinct targets (the caller then leaves SKD out)."""
        candidates = self.candidates.pick(scores, target, self.num_updates)
        if candidates is None:
            return None, None, None
        real = target.ne(self.padding_idx)
        pad_mask = ~real.unsqueeze(-1)
        # Padding positions ask for the padding id only: no tail cluster is run for them.
        entries = torch.cat([target.unsqueeze(-1), candidates], dim=-1).masked_fill(pad_mask, self.padding_idx)
        # Cluster candidates lie in the gold word's cluster: the gold rows' projections and
        # log-normalisers serve the data term and every candidate.
        picked = scores.log_probs(entries, cluster_local=self.settings.adaptive_candidates != "any")
        smooth_loss = scores.smooth_loss() if self.eps > 0 else None
        s = self.settings
        if s.weighting == "distance":  # [gold, best other]: their squared distance, from l2
            distance = -scores.pair_similarities(target, entries, "l2")[:, 1]
            loss, nll_loss, top1_loss, w, top1_is_gold = top1_distance_loss(
                picked,
                distance,
                s.sigma,
                s.weight_max,
                alpha,
                self.eps,
                scores.vocab_size,
                smooth_loss,
                pad_mask=pad_mask,
                reduce=reduce,
            )
            return (
                loss,
                nll_loss,
                {
                    "skd_loss": top1_loss.detach().sum(),
                    "skd_weight": w.sum(),
                    "skd_top1_gold": top1_is_gold.sum(),
                    "skd_ntokens": real.sum(),
                },
            )
        soft_targets, tau = soft_targets_from_similarities(
            scores.pair_similarities(target, entries, s.similarity), s.temperature, s.gold_mass
        )
        loss, nll_loss, skd_loss = skd_loss_from_entries(
            picked, soft_targets, alpha, self.eps, scores.vocab_size, smooth_loss, pad_mask, reduce
        )
        skd_log = {
            "skd_loss": skd_loss.detach().sum(),
            "skd_gold_q": soft_targets[:, 0].masked_fill(~real, 0.0).sum(),  # no masked_select: it syncs
            "skd_ntokens": real.sum(),
        }
        if s.gold_mass is not None:
            solved = real & tau.gt(0)  # tau 0: rho unreachable there (the gold token has ties)
            skd_log["skd_tau"] = tau.masked_fill(~solved, 0.0).sum()
            skd_log["skd_tau_ntokens"] = solved.sum()
        return loss, nll_loss, skd_log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        batches = sum(log.get("skd_batches", 0) for log in logging_outputs)
        if batches == 0:  # validation
            return
        alpha_sum = sum(log.get("skd_alpha", 0) for log in logging_outputs)
        metrics.log_scalar("skd_alpha", utils.item(alpha_sum) / batches, round=4)
        ntokens = utils.item(sum(log.get("skd_ntokens", 0) for log in logging_outputs))
        if ntokens > 0:
            skd_loss = utils.item(sum(log.get("skd_loss", 0) for log in logging_outputs))
            metrics.log_scalar("skd_loss", skd_loss / ntokens / math.log(2), ntokens, round=3)
            # Per-token means: q's gold mass (softmax weighting), or the distance weight and how
            # often the top-1 prediction is the gold token (distance weighting).
            for key in ("skd_gold_q", "skd_weight", "skd_top1_gold"):
                if any(key in log for log in logging_outputs):
                    total = utils.item(sum(log.get(key, 0) for log in logging_outputs))
                    metrics.log_scalar(key, total / ntokens, ntokens, round=4)
        tau_ntokens = utils.item(sum(log.get("skd_tau_ntokens", 0) for log in logging_outputs))
        if tau_ntokens > 0:
            tau = utils.item(sum(log.get("skd_tau", 0) for log in logging_outputs))
            metrics.log_scalar("skd_tau", tau / tau_ntokens, tau_ntokens, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
