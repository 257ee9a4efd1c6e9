"""``--criterion label_smoothed_skd``: label-smoothed cross-entropy mixed with self-knowledge distillation.

A thin adapter: it gathers log-probabilities, targets and the output embedding, picks
the candidates, and calls the pure functions of :mod:`skd_fairseq.losses`.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
    label_smoothed_nll_loss,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.dataclass.constants import DDP_BACKEND_CHOICES
from fairseq.logging import metrics
from omegaconf import II

from ..losses import (
    check_distance_weighting,
    check_gold_mass,
    skd_loss_from_entries,
    soft_targets_from_similarities,
    top1_distance_loss,
)
from ..neighbours import admissible_ids, check_k, neighbour_table, random_candidates
from ..schedule import check_schedule, skd_alpha
from ..similarity import SIMILARITIES
from .adaptive_softmax import ADAPTIVE_CANDIDATES, AdaptiveScores, adaptive_softmax_of
from .scores import FullScores
from .fairseq_access import excluded_token_ids, output_embedding, relay_num_updates

logger = logging.getLogger(__name__)

CANDIDATE_MODES = ("neighbours", "predicted", "random")
WEIGHTINGS = ("softmax", "distance")
DEFAULT_TEMPERATURE = 1.0
DEFAULT_WEIGHT_MAX = 0.5


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
            "help": "tau > 0: q = softmax(similarity / tau) over [gold, candidates] "
            f"(default {DEFAULT_TEMPERATURE} unless --skd-gold-mass is given)"
        },
    )
    skd_gold_mass: Optional[float] = field(
        default=None,
        metadata={
            "help": "rho in (1/(k+1), 1), instead of --skd-temperature: tau is solved at every "
            "position so that q puts exactly rho on the gold token (cosine or l2 similarity)"
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
            "help": "candidates only among tokens already seen as a training target: with a joined "
            "dictionary, source-only pieces never are, and SKD alone would train their output "
            "embeddings towards the gold tokens they are candidates of (costs a device sync per step "
            "with random or predicted candidates, and at each table refresh)"
        },
    )
    seed: int = II("common.seed")
    ddp_backend: DDP_BACKEND_CHOICES = II("distributed_training.ddp_backend")


def check_weighting(cfg) -> None:
    """--skd-weighting and the flags that belong to one weighting only."""
    if str(cfg.skd_weighting) == "softmax":
        for flag, value in (("--skd-sigma", cfg.skd_sigma), ("--skd-weight-max", cfg.skd_weight_max)):
            if value is not None:
                raise ValueError(f"{flag} belongs to --skd-weighting distance; leave it out with softmax weighting")
        return
    if str(cfg.skd_candidates) != "predicted" or cfg.skd_topk != 1:
        raise ValueError(
            "--skd-weighting distance is the top-1 reading of SKD: it needs --skd-candidates predicted "
            f"--skd-topk 1 (got --skd-candidates {cfg.skd_candidates} --skd-topk {cfg.skd_topk})"
        )
    if cfg.skd_sigma is None:
        raise ValueError("--skd-weighting distance needs --skd-sigma S > 0 (the weight is exp(-S * distance^2))")
    weight_max = cfg.skd_weight_max if cfg.skd_weight_max is not None else DEFAULT_WEIGHT_MAX
    try:
        check_distance_weighting(cfg.skd_sigma, weight_max)
    except ValueError as err:
        flag = "--skd-sigma" if str(err).startswith("sigma") else "--skd-weight-max"
        raise ValueError(f"{flag}: {err}") from None
    if cfg.skd_temperature is not None or cfg.skd_gold_mass is not None:
        raise ValueError(
            "--skd-temperature and --skd-gold-mass shape the softmax target; --skd-weighting distance "
            "weighs its one candidate by distance instead: leave them out"
        )
    if str(cfg.skd_similarity) != "cosine":
        raise ValueError(
            f"--skd-similarity {cfg.skd_similarity}: --skd-weighting distance uses the squared Euclidean "
            "distance of the output embeddings; leave --skd-similarity unset"
        )


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
        check_schedule(cfg.skd_alpha, cfg.skd_start_update, cfg.skd_warmup_updates)
        check_weighting(cfg)
        if cfg.skd_temperature is not None and cfg.skd_gold_mass is not None:
            raise ValueError(
                "give --skd-temperature or --skd-gold-mass, not both: a gold mass solves the "
                "temperature at every position"
            )
        if cfg.skd_temperature is not None and not cfg.skd_temperature > 0:
            raise ValueError(f"--skd-temperature must be > 0, got {cfg.skd_temperature}")
        if cfg.skd_gold_mass is not None:
            try:
                check_gold_mass(cfg.skd_gold_mass, cfg.skd_topk)
            except ValueError as err:
                raise ValueError(f"--skd-gold-mass: {err}") from None
            if str(cfg.skd_similarity) == "dot":
                raise ValueError(
                    "--skd-gold-mass needs --skd-similarity cosine or l2: under dot a candidate "
                    "can be more similar to the gold token than the gold token itself, so no "
                    "temperature may give it the asked mass"
                )
        if cfg.skd_neighbour_refresh < 0:
            raise ValueError(
                f"--skd-neighbour-refresh must be >= 0, got {cfg.skd_neighbour_refresh}"
            )
        dictionary = task.target_dictionary
        excluded = excluded_token_ids(dictionary)
        try:
            check_k(cfg.skd_topk, len(dictionary), len(excluded))
        except ValueError as err:
            raise ValueError(f"--skd-topk: {err}") from None
        self.vocab_size = len(dictionary)
        self.alpha_max = cfg.skd_alpha
        self.start_update = cfg.skd_start_update
        self.warmup_updates = cfg.skd_warmup_updates
        self.topk = cfg.skd_topk
        self.candidate_mode = str(cfg.skd_candidates)
        self.similarity = str(cfg.skd_similarity)
        self.gold_mass = cfg.skd_gold_mass
        self.temperature = (
            None if self.gold_mass is not None
            else cfg.skd_temperature if cfg.skd_temperature is not None
            else DEFAULT_TEMPERATURE
        )
        self.neighbour_refresh = cfg.skd_neighbour_refresh
        self.adaptive_candidates = None if cfg.skd_adaptive_candidates is None else str(cfg.skd_adaptive_candidates)
        self._candidates_checked = False
        self.weighting = str(cfg.skd_weighting)
        self.sigma = cfg.skd_sigma
        self.weight_max = cfg.skd_weight_max if cfg.skd_weight_max is not None else DEFAULT_WEIGHT_MAX
        # Moves with the criterion to the training device; never saved.
        self.register_buffer("excluded_ids", torch.tensor(excluded), persistent=False)
        # --skd-exclude-unseen: which tokens have been a training target so far (this process).
        self.exclude_unseen = cfg.skd_exclude_unseen
        self.register_buffer("seen_targets", torch.zeros(len(dictionary), dtype=torch.bool), persistent=False)
        self._seen_checked = False  # whether the first training step looked for a resume
        self.register_buffer(
            "admissible_ids", admissible_ids(len(dictionary), excluded), persistent=False
        )
        # --skd-candidates random: a generator seeded from (seed, update, micro-batch, rank), so
        # runs are reproducible and the draws leave fairseq's own random stream (dropout) alone.
        self.seed = cfg.seed
        self.ddp_backend = str(cfg.ddp_backend)
        self._generator = None
        self._draw = (None, 0)  # (update, micro-batches drawn in it)
        # Neighbour table of the whole vocabulary, derived from the (replicated) weights.
        self._neighbour_table = None
        self._neighbour_table_period = None
        self.num_updates = 0
        relay_num_updates(task)

    def set_num_updates(self, num_updates: int) -> None:
        """The trainer's update count (updates already applied); fed by ``relay_num_updates``."""
        self.num_updates = num_updates

    def current_alpha(self) -> float:
        return skd_alpha(self.num_updates, self.alpha_max, self.start_update, self.warmup_updates)

    def forward(self, model, sample, reduce=True):
        net_output = self.student_forward(model, sample)
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        loss, nll_loss, training_log = self.compute_loss_terms(
            model, sample, net_output, lprobs, target, reduce
        )
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

    def get_lprobs_and_target(self, model, net_output, sample):
        """fairseq's, except on an adaptive softmax: :class:`AdaptiveScores` instead of [N, V]."""
        softmax = adaptive_softmax_of(model)
        if softmax is None:
            if self.adaptive_candidates is not None:
                raise ValueError(
                    f"--skd-adaptive-candidates {self.adaptive_candidates}: this model has a full softmax, "
                    "with no clusters to keep candidates in; leave the flag out (it is for models trained "
                    "with --adaptive-softmax-cutoff)"
                )
            return super().get_lprobs_and_target(model, net_output, sample)
        self.check_adaptive_softmax()
        target = model.get_targets(sample, net_output).view(-1)
        scores = AdaptiveScores(softmax, net_output[0], target, self.adaptive_candidates or "cluster")
        if not self._candidates_checked:  # the clusters are known from the first batch on
            scores.check_candidates(self.topk, self.excluded_ids)
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

    def compute_loss_terms(self, model, sample, net_output, lprobs, target, reduce):
        """(loss, nll_loss, training-only log entries) for flattened lprobs [N, V], target [N]."""
        # Validation reports the plain label-smoothed loss, so runs stay comparable.
        alpha = self.current_alpha() if model.training else 0.0
        if self.exclude_unseen and model.training:
            if not self._seen_checked:
                self._seen_checked = True
                if self.num_updates > 0:
                    logger.warning(
                        f"--skd-exclude-unseen: resuming at update {self.num_updates}; checkpoints do not "
                        "hold the set of tokens seen as a target, so it starts empty again: until the "
                        "run has passed over the training data once more, candidates are drawn among "
                        "the targets seen since this restart (a neighbour table built from the first "
                        "batches holds fewer candidates than the uninterrupted run's)"
                    )
            # Every training target counts as seen, also before SKD starts. index_fill_, then
            # clear the padding id: a boolean mask would sync.
            self.seen_targets.index_fill_(0, target, True)
            self.seen_targets[self.padding_idx] = False
        skd_log = None
        if alpha > 0:
            loss, nll_loss, skd_log = self.compute_skd_loss(model, lprobs, target, alpha, reduce)
        if skd_log is None:  # no SKD term in this step
            loss, nll_loss = self.data_loss(lprobs, target, reduce)
            skd_log = self.empty_skd_log(target.device)
        # Same keys on every rank, micro-batch and update, so fairseq can sum them (its fast
        # stat sync all-reduces one buffer per key set, built from the first micro-batch's keys).
        return loss, nll_loss, dict(skd_alpha=alpha, skd_batches=1, **skd_log)

    def empty_skd_log(self, device):
        if self.weighting == "distance":
            keys = ["skd_loss", "skd_weight", "skd_top1_gold", "skd_ntokens"]
        else:
            keys = ["skd_loss", "skd_gold_q", "skd_ntokens"]
            keys += ["skd_tau", "skd_tau_ntokens"] if self.gold_mass is not None else []
        return {key: torch.zeros((), device=device) for key in keys}

    def data_loss(self, lprobs, target, reduce):
        """(loss, nll_loss) without SKD: fairseq's label-smoothed NLL, or on an adaptive softmax the
        negative log-likelihood of every target word (:meth:`AdaptiveScores.nll`)."""
        if isinstance(lprobs, AdaptiveScores):
            loss = lprobs.nll(target, self.padding_idx, reduce)
            return loss, loss
        return label_smoothed_nll_loss(lprobs, target, self.eps, ignore_index=self.padding_idx, reduce=reduce)

    def candidate_exclusions(self, refresh_table, scores):
        """(excluded ids, admissible ids, enough) for the candidates: the special and filler symbols
        and, with --skd-exclude-unseen, the tokens not yet seen as a target; ``enough`` is False
        while fewer than k + 1 tokens have been (with cluster candidates: in some cluster). With a
        neighbour table the seen set only matters at a refresh (both ids are None otherwise: the
        cached table applies)."""
        if not self.exclude_unseen:
            return self.excluded_ids, self.admissible_ids, True
        if self.candidate_mode == "neighbours" and self.neighbour_refresh > 0 and not refresh_table:
            return None, None, True
        seen = self.seen_targets.clone()
        if self.candidate_mode == "neighbours" and torch.distributed.is_initialized():
            # Every rank builds the same table: tokens seen on any rank count.
            seen_int = seen.to(torch.int32)
            torch.distributed.all_reduce(seen_int, op=torch.distributed.ReduceOp.MAX)
            seen = seen_int.bool()
        seen[self.excluded_ids] = False
        # Both id lists, each ascending, from one stable sort: the unseen ids, then the seen ones.
        order = torch.argsort(seen.to(torch.uint8), stable=True)
        counts = scores.seen_per_cluster(seen).tolist()  # the one sync
        n_seen = sum(counts)
        excluded, admissible = order[: seen.numel() - n_seen], order[seen.numel() - n_seen:]
        return excluded, admissible, min(counts) >= self.topk + 1

    def output_scores(self, model, lprobs):
        """The criterion's view of the scores: :class:`AdaptiveScores` as built, or the full
        softmax's lprobs with its output embedding."""
        if isinstance(lprobs, AdaptiveScores):
            return lprobs
        return FullScores(lprobs, lambda: output_embedding(model, self.vocab_size))

    def compute_skd_loss(self, model, lprobs, target, alpha, reduce):
        """(loss, nll_loss, log entries) with the SKD term, or None while --skd-exclude-unseen
        has seen fewer than k + 1 distinct targets (the caller then leaves SKD out)."""
        scores = self.output_scores(model, lprobs)
        excluded, admissible, enough = self.candidate_exclusions(self.table_is_stale(target.device), scores)
        if not enough:
            return None, None, None
        if self.candidate_mode == "predicted":
            candidates = scores.topk(self.topk, excluded, target)
        elif self.candidate_mode == "random":
            candidates = random_candidates(
                target, self.topk, admissible, self.random_generator(target.device),
                pools=scores.random_pools(admissible, target),
            )
        else:
            candidates = self.neighbour_candidates(scores, target, excluded)
        real = target.ne(self.padding_idx)
        # Padding positions ask for the padding id only: no tail cluster is run for them.
        entries = torch.cat([target.unsqueeze(-1), candidates], dim=-1).masked_fill(~real.unsqueeze(-1), self.padding_idx)
        # Cluster candidates lie in the gold word's cluster: the gold rows' projections and
        # log-normalisers serve the data term and every candidate.
        picked = scores.log_probs(entries, cluster_local=self.adaptive_candidates != "any")
        smooth_loss = scores.smooth_loss() if self.eps > 0 else None
        pad_mask = ~real.unsqueeze(-1)
        if self.weighting == "distance":  # [gold, best other]: their squared distance, from l2
            distance = -scores.pair_similarities(target, entries, "l2")[:, 1]
            loss, nll_loss, top1_loss, w, top1_is_gold = top1_distance_loss(
                picked, distance, self.sigma, self.weight_max, alpha, self.eps, scores.vocab_size,
                smooth_loss, pad_mask=pad_mask, reduce=reduce,
            )
            return loss, nll_loss, {
                "skd_loss": top1_loss.detach().sum(),
                "skd_weight": w.sum(),
                "skd_top1_gold": top1_is_gold.sum(),
                "skd_ntokens": real.sum(),
            }
        soft_targets, tau = soft_targets_from_similarities(
            scores.pair_similarities(target, entries, self.similarity), self.temperature, self.gold_mass
        )
        loss, nll_loss, skd_loss = skd_loss_from_entries(
            picked, soft_targets, alpha, self.eps, scores.vocab_size, smooth_loss, pad_mask, reduce
        )
        skd_log = {
            "skd_loss": skd_loss.detach().sum(),
            "skd_gold_q": soft_targets[:, 0].masked_fill(~real, 0.0).sum(),  # no masked_select: it syncs
            "skd_ntokens": real.sum(),
        }
        if self.gold_mass is not None:
            solved = real & tau.gt(0)  # tau 0: rho unreachable there (the gold token has ties)
            skd_log["skd_tau"] = tau.masked_fill(~solved, 0.0).sum()
            skd_log["skd_tau_ntokens"] = solved.sum()
        return loss, nll_loss, skd_log

    def random_generator(self, device):
        """A generator on ``device`` seeded for this micro-batch: fresh draws at every step."""
        update, drawn = self._draw
        drawn = drawn + 1 if update == self.num_updates else 0
        self._draw = (self.num_updates, drawn)
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        self._generator.manual_seed(hash((self.seed, self.num_updates, drawn, rank)) % 2**63)
        return self._generator

    def table_is_stale(self, device):
        """Whether this step rebuilds the neighbour table (always, without a table)."""
        if self.candidate_mode != "neighbours" or self.neighbour_refresh == 0:
            return True
        table = self._neighbour_table
        period = self.num_updates // self.neighbour_refresh
        return table is None or table.device != device or period != self._neighbour_table_period

    def neighbour_candidates(self, scores, target, excluded):
        """The gold tokens' k nearest neighbours, in the spaces ``scores`` searches. ``excluded``
        is only read when the neighbours are computed (it is None otherwise)."""
        if self.neighbour_refresh == 0:
            gold, rows = torch.unique(target, return_inverse=True)
            return neighbour_table(scores.neighbour_spaces(), self.topk, self.similarity, excluded, ids=gold)[rows]
        if self.table_is_stale(target.device):
            distributed = torch.distributed.is_initialized()
            # With several ranks each searches its share of the rows and one all-gather assembles
            # the table (the weights are replicated, so the shares make up the one table).
            self._neighbour_table = neighbour_table(
                scores.neighbour_spaces(), self.topk, self.similarity, excluded,
                world=torch.distributed.get_world_size() if distributed else 1,
                rank=torch.distributed.get_rank() if distributed else 0,
            )
            self._neighbour_table_period = self.num_updates // self.neighbour_refresh
        return self._neighbour_table[target]

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
