"""``label_smoothed_skd``'s flags, checked and resolved in one place. No fairseq imports here.

:func:`skd_settings` reads the criterion's config (any object with its ``skd_*`` attributes),
raises a ``ValueError`` naming the flag and the fix for every bad value or combination, and
returns the settings the criterion runs with, its defaults filled in.

The defaults follow the evidence (``results/multi30k-de-en-sweep.md``, Multi30k de-en trained to
convergence, chosen on the validation split): with neither ``--skd-temperature`` nor
``--skd-gold-mass`` the soft target keeps a gold mass of 0.75 (a fixed tau 1 would leave the gold
token about 0.18 of q, and a fixed tau lets the gold mass drift during training), and the
candidates are only tokens already seen as a training target (+0.43 valid BLEU over the same gold
mass without it, on one seed; and with a joined dictionary it keeps source-only pieces from being
trained towards gold tokens they never are; with a target-side dictionary every token is soon
seen, so it changes nothing but costs one sync at each neighbour-table refresh, and with predicted
or random candidates in the first steps only). ``--skd-weighting distance`` is the public code's top-1
reading and keeps that code's behaviour: its argmax runs over every token. With --skd-alpha 0
(the teacher-based criteria's default) SKD is off, and so are these defaults.
"""

from dataclasses import dataclass
from typing import Optional

from .losses import ArgumentError, check_distance_weighting, check_gold_mass, check_gold_mass_similarity
from .neighbours import check_k
from .schedule import check_schedule

# The flag of each argument of check_distance_weighting.
DISTANCE_FLAGS = {"sigma": "--skd-sigma", "weight_max": "--skd-weight-max"}

CANDIDATE_MODES = ("neighbours", "predicted", "random")
WEIGHTINGS = ("softmax", "distance")
ADAPTIVE_CANDIDATES = ("cluster", "any")
DEFAULT_GOLD_MASS = 0.75
DEFAULT_WEIGHT_MAX = 0.5


@dataclass(frozen=True)
class SkdSettings:
    alpha_max: float
    start_update: int
    warmup_updates: int
    topk: int
    candidates: str
    similarity: str
    weighting: str
    temperature: Optional[float]  # None: tau solved per position for ``gold_mass``
    gold_mass: Optional[float]  # None: a fixed ``temperature`` (both None: distance weighting, or SKD off)
    sigma: Optional[float]
    weight_max: float
    adaptive_candidates: Optional[str]
    neighbour_refresh: int
    exclude_unseen: bool


def skd_settings(cfg, vocab_size: int, n_excluded: int) -> SkdSettings:
    """The checked settings of ``cfg`` for a dictionary of ``vocab_size`` symbols of which
    ``n_excluded`` (special symbols, fillers) are never candidates."""
    check_schedule(cfg.skd_alpha, cfg.skd_start_update, cfg.skd_warmup_updates)
    try:
        check_k(cfg.skd_topk, vocab_size, n_excluded)
    except ValueError as err:
        raise ValueError(f"--skd-topk: {err}") from None
    if cfg.skd_neighbour_refresh < 0:
        raise ValueError(f"--skd-neighbour-refresh must be >= 0, got {cfg.skd_neighbour_refresh}")
    if cfg.skd_exclude_unseen and cfg.skd_include_unseen:
        raise ValueError("give --skd-exclude-unseen or --skd-include-unseen, not both")
    weighting = str(cfg.skd_weighting)
    if weighting == "distance":
        temperature, gold_mass = None, None
        sigma, weight_max = distance_weighting(cfg)
    else:
        temperature, gold_mass = softmax_target(cfg)
        sigma, weight_max = None, DEFAULT_WEIGHT_MAX
    return SkdSettings(
        alpha_max=cfg.skd_alpha,
        start_update=cfg.skd_start_update,
        warmup_updates=cfg.skd_warmup_updates,
        topk=cfg.skd_topk,
        candidates=str(cfg.skd_candidates),
        similarity=str(cfg.skd_similarity),
        weighting=weighting,
        temperature=temperature,
        gold_mass=gold_mass,
        sigma=sigma,
        weight_max=weight_max,
        adaptive_candidates=None if cfg.skd_adaptive_candidates is None else str(cfg.skd_adaptive_candidates),
        neighbour_refresh=cfg.skd_neighbour_refresh,
        # On by default with the softmax target (the validated setting); the top-1 reading's
        # argmax runs over every token, as in the public code, unless asked otherwise.
        exclude_unseen=bool(cfg.skd_exclude_unseen)
        or (weighting == "softmax" and cfg.skd_alpha > 0 and not cfg.skd_include_unseen),
    )


def softmax_target(cfg):
    """(temperature, gold mass) of the softmax target: one of them, or neither when SKD is off."""
    for flag, value in (("--skd-sigma", cfg.skd_sigma), ("--skd-weight-max", cfg.skd_weight_max)):
        if value is not None:
            raise ValueError(f"{flag} belongs to --skd-weighting distance; leave it out with softmax weighting")
    if cfg.skd_temperature is not None and cfg.skd_gold_mass is not None:
        raise ValueError(
            "give --skd-temperature or --skd-gold-mass, not both: a gold mass solves the temperature at every position"
        )
    if cfg.skd_temperature is not None:
        if not cfg.skd_temperature > 0:
            raise ValueError(f"--skd-temperature must be > 0, got {cfg.skd_temperature}")
        return cfg.skd_temperature, None
    if cfg.skd_gold_mass is None and cfg.skd_alpha == 0:
        return None, None  # SKD is off: no soft target is ever built
    gold_mass = DEFAULT_GOLD_MASS if cfg.skd_gold_mass is None else cfg.skd_gold_mass
    try:  # the default 0.75 is above 1/(k+1) for every k >= 1
        check_gold_mass(gold_mass, cfg.skd_topk)
    except ValueError as err:
        raise ValueError(f"--skd-gold-mass: {err}") from None
    try:
        check_gold_mass_similarity(str(cfg.skd_similarity))
    except ValueError as err:
        if cfg.skd_gold_mass is None:
            raise ValueError(
                f"--skd-similarity {cfg.skd_similarity} without --skd-temperature: the default target keeps a "
                f"gold mass of {DEFAULT_GOLD_MASS}, and {err}; give --skd-temperature TAU with dot similarity"
            ) from None
        raise ValueError(f"--skd-gold-mass needs --skd-similarity cosine or l2: {err}") from None
    return None, gold_mass


def distance_weighting(cfg):
    """(sigma, weight cap) of the top-1 distance reading, after its flags are checked."""
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
    except ArgumentError as err:
        raise ValueError(f"{DISTANCE_FLAGS[err.argument]}: {err}") from None
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
    return cfg.skd_sigma, weight_max
