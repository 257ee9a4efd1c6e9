"""The SKD soft target and loss, as pure functions on tensors. No fairseq imports here.

Per target position with gold token t, candidates c_1..c_k and entries [t, c_1..c_k]:

    q       = softmax( s(e_t, e_[t, c_1..c_k]) / tau )        (fp32, no gradient)
    L_skd   = - sum_j q_j log p(entry_j)
    L       = (1 - alpha) L_ls + alpha L_skd

where tau is either fixed or, with a gold mass rho, solved per position so that q_t = rho.
L_ls is fairseq's label-smoothed NLL (``label_smoothed_nll_loss``).
"""

import math

import torch

from .similarity import EmbeddingSimilarity

# Rows of the [rows, k+1, D] fp32 gather per block: at most this many values (64 MiB).
_SOFT_TARGET_BLOCK_ELEMENTS = 1 << 24


# Newton steps of the gold-mass solve: 20 already give rho to 1e-6 for gaps spanning
# 1e-6 to 1e3 in one row (tests/test_losses.py); a fixed count, so the solve never syncs.
GOLD_MASS_NEWTON_STEPS = 30


def check_gold_mass(gold_mass: float, k: int) -> None:
    """rho must lie strictly between the uniform mass 1/(k+1) and 1."""
    if not 1.0 / (k + 1) < gold_mass < 1.0:
        raise ValueError(
            f"gold mass must be in (1/(k+1), 1) = ({1.0 / (k + 1):.4g}, 1) for k = {k} candidates, "
            f"got {gold_mass}: 1/(k+1) is the mass of a uniform q (infinite tau), 1 a one-hot q (tau 0)"
        )


def gold_mass_soft_targets(similarities: torch.Tensor, gold_mass: float, steps: int = GOLD_MASS_NEWTON_STEPS):
    """q = softmax(similarities / tau) with tau solved per row so that q[:, 0] = ``gold_mass``.

    With d_j = s_0 - s_j >= 0 (column 0 is the gold token's similarity with itself, the
    largest for cosine and l2; rounding below 0 is clamped) and beta = 1/tau, the target is
    sum_j exp(-beta d_j) = 1/rho - 1. Its log is convex and decreasing in beta, so Newton's
    method from beta = 0 climbs to the root without overshooting. A row whose target cannot be
    reached (m candidates tie with the gold token and 1/(m+1) <= rho: every row of a zero
    embedding, say) gets the limit tau -> 0: q uniform over the gold token and its ties.

    Args:
        similarities: [N, k+1] similarities, column 0 the gold token's with itself.
        gold_mass: rho in (1/(k+1), 1).
        steps: Newton steps (a fixed number: no host-device sync).

    Returns:
        (q [N, k+1] fp32 without gradient, tau [N] fp32: the solved temperature, 0 where the
        gold mass could not be reached).
    """
    check_gold_mass(gold_mass, similarities.size(-1) - 1)
    with torch.no_grad():
        sims = similarities.detach().float()
        gaps = (sims[:, :1] - sims[:, 1:]).clamp_min_(0.0)  # d_j, [N, k]
        log_target = math.log(1.0 / gold_mass - 1.0)  # a Python float: a device tensor from the host would sync
        ties = gaps.eq(0).sum(-1)
        reachable = ties < (1.0 / gold_mass - 1.0)
        beta = torch.zeros(sims.size(0), dtype=torch.float32, device=sims.device)
        for _ in range(steps):
            logits = -beta.unsqueeze(-1) * gaps
            excess = torch.logsumexp(logits, dim=-1) - log_target  # > 0 left of the root
            slope = -(torch.softmax(logits, dim=-1) * gaps).sum(-1)  # < 0 where reachable
            beta = beta - excess / slope.masked_fill(slope.ge(0), -1.0)
        beta = torch.where(reachable, beta.clamp_min(0.0), torch.full_like(beta, float("inf")))
        # tau -> 0 leaves only the ties: -beta * 0 would be nan there, so they keep logit 0.
        logits = torch.where(gaps.gt(0), -beta.unsqueeze(-1) * gaps, torch.zeros_like(gaps))
        q = torch.softmax(torch.cat([torch.zeros_like(beta).unsqueeze(-1), logits], dim=-1), dim=-1)
        return q, beta.reciprocal()


def soft_targets_from_similarities(similarities: torch.Tensor, temperature: float = None, gold_mass: float = None):
    """(q, tau) from similarities [N, k+1] whose column 0 is the gold token's with itself:
    q = softmax(similarities / tau) at a fixed tau, or with tau solved per row so that q's
    gold mass is rho (:func:`gold_mass_soft_targets`). fp32, no gradient; tau [N] is 0 where
    rho could not be reached."""
    if (temperature is None) == (gold_mass is None):
        raise ValueError("give exactly one of temperature and gold_mass")
    with torch.no_grad():
        sims = similarities.detach().float()
        if gold_mass is not None:
            return gold_mass_soft_targets(sims, gold_mass)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        return torch.softmax(sims / temperature, dim=-1), torch.full_like(sims[:, 0], temperature)


def pair_similarities(similarity_of: EmbeddingSimilarity, target: torch.Tensor, entries: torch.Tensor) -> torch.Tensor:
    """s(e_target, e_entry) [N, m] in fp32 without gradient, a block of rows at a time (the
    [rows, m, D] gather is what bounds the memory)."""
    n, width = entries.shape
    rows = max(1, _SOFT_TARGET_BLOCK_ELEMENTS // (width * similarity_of.weight.size(1)))
    out = torch.empty(n, width, dtype=torch.float32, device=entries.device)
    with torch.no_grad():
        for start in range(0, n, rows):
            out[start : start + rows] = similarity_of.pairs(target[start : start + rows], entries[start : start + rows])
    return out


def skd_soft_targets(
    embeddings: torch.Tensor,
    target: torch.Tensor,
    candidates: torch.Tensor,
    similarity: str,
    temperature: float = None,
    gold_mass: float = None,
    return_temperature: bool = False,
):
    """q over [t, c_1..c_k] for each position, at a fixed tau or at a gold mass rho.

    Args:
        embeddings: [V, D] output embedding matrix.
        target: [N] gold ids.
        candidates: [N, k] candidate ids.
        similarity: ``cosine``, ``l2`` or ``dot``.
        temperature: tau > 0 (give this or ``gold_mass``).
        gold_mass: rho in (1/(k+1), 1): tau solved per position so that q_t = rho
            (:func:`gold_mass_soft_targets`); cosine or l2 only, where the gold token is
            the most similar to itself.
        return_temperature: also return tau per position.

    Returns:
        FloatTensor [N, k+1] (fp32, rows sum to 1, no gradient); column 0 is the gold token.
        With ``return_temperature``: (q, tau [N]); tau is 0 where rho could not be reached.
    """
    if (temperature is None) == (gold_mass is None):
        raise ValueError("give exactly one of temperature and gold_mass")
    if gold_mass is None and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if gold_mass is not None:
        check_gold_mass_similarity(similarity)
        check_gold_mass(gold_mass, candidates.size(-1))
    entries = torch.cat([target.unsqueeze(-1), candidates], dim=-1)
    sims = pair_similarities(EmbeddingSimilarity(embeddings, similarity), target, entries)
    q, tau = soft_targets_from_similarities(sims, temperature, gold_mass)
    return (q, tau) if return_temperature else q


def check_gold_mass_similarity(similarity: str) -> None:
    if similarity == "dot":
        raise ValueError(
            "a gold mass needs a similarity under which each token is the most similar to "
            "itself (cosine or l2); with dot a candidate can outrank the gold token"
        )


def label_smoothed_skd_loss(
    lprobs: torch.Tensor,
    target: torch.Tensor,
    candidates: torch.Tensor,
    soft_targets: torch.Tensor,
    alpha: float,
    epsilon: float,
    ignore_index=None,
    reduce: bool = True,
):
    """(1 - alpha) L_ls + alpha L_skd, summed over positions (or per position).

    Args:
        lprobs: [N, V] log-probabilities (gradient flows into them).
        target: [N] gold ids.
        candidates: [N, k] candidate ids.
        soft_targets: [N, k+1] q from :func:`skd_soft_targets`.
        alpha: SKD weight in [0, 1].
        epsilon: label smoothing.
        ignore_index: positions whose target equals it contribute nothing.
        reduce: sum over positions (default) or return per-position [N] tensors.

    Returns:
        (loss, nll_loss, skd_loss). L_ls is fairseq's ``label_smoothed_nll_loss``,
        computed with the same operations in the same order, so ``loss`` equals
        fairseq's bit for bit when alpha == 0.
    """
    entries = torch.cat([target.unsqueeze(-1), candidates], dim=-1)
    # One gather serves the NLL (column 0) and L_skd, so the backward pass scatters
    # into an [N, V] gradient once, as plain label smoothing does.
    picked = lprobs.gather(dim=-1, index=entries)
    smooth_loss = -lprobs.sum(dim=-1, keepdim=True)
    pad_mask = target.unsqueeze(-1).eq(ignore_index) if ignore_index is not None else None
    return skd_loss_from_entries(picked, soft_targets, alpha, epsilon, lprobs.size(-1), smooth_loss, pad_mask, reduce)


def _check_mix(alpha: float, epsilon: float, smooth_loss, vocab_size) -> None:
    """The arguments every mix of label smoothing with an SKD term shares."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if epsilon > 0 and (smooth_loss is None or vocab_size is None):
        raise ValueError("label smoothing (epsilon > 0) needs smooth_loss and vocab_size")


def _label_smoothed(nll_loss, smooth_loss, epsilon: float, vocab_size):
    """fairseq's label-smoothed loss from the NLL and -sum_w log p(w) (None: no smoothing)."""
    if smooth_loss is None:
        return nll_loss
    eps_i = epsilon / (vocab_size - 1)
    return (1.0 - epsilon - eps_i) * nll_loss + eps_i * smooth_loss


def skd_loss_from_entries(
    picked: torch.Tensor,
    soft_targets: torch.Tensor,
    alpha: float,
    epsilon: float = 0.0,
    vocab_size: int = None,
    smooth_loss: torch.Tensor = None,
    pad_mask: torch.Tensor = None,
    reduce: bool = True,
):
    """(1 - alpha) L_ls + alpha L_skd from the log-probabilities of the entries only.

    Args:
        picked: [N, k+1] log p of [t, c_1..c_k] (gradient flows into them).
        soft_targets: [N, k+1] q.
        alpha, epsilon: as :func:`label_smoothed_skd_loss`.
        vocab_size: V (needed when epsilon > 0).
        smooth_loss: [N, 1] -sum_w log p(w) (needed when epsilon > 0).
        pad_mask: [N, 1] bool, True at padding.
        reduce: sum over positions or per-position [N] tensors.

    Returns:
        (loss, nll_loss, skd_loss).
    """
    _check_mix(alpha, epsilon, smooth_loss, vocab_size)
    nll_loss = -picked[:, :1]
    skd_loss = -(soft_targets * picked).sum(dim=-1, keepdim=True)
    if pad_mask is not None:
        nll_loss.masked_fill_(pad_mask, 0.0)
        if smooth_loss is not None:
            smooth_loss.masked_fill_(pad_mask, 0.0)
        skd_loss.masked_fill_(pad_mask, 0.0)
    nll_loss, skd_loss = nll_loss.squeeze(-1), skd_loss.squeeze(-1)
    if smooth_loss is not None:
        smooth_loss = smooth_loss.squeeze(-1)
    if reduce:
        nll_loss, skd_loss = nll_loss.sum(), skd_loss.sum()
        smooth_loss = smooth_loss.sum() if smooth_loss is not None else None
    ls_loss = _label_smoothed(nll_loss, smooth_loss, epsilon, vocab_size)
    if alpha == 0:
        return ls_loss, nll_loss, skd_loss
    return (1.0 - alpha) * ls_loss + alpha * skd_loss, nll_loss, skd_loss


class ArgumentError(ValueError):
    """A bad value of one argument of a pure function, named in ``argument`` so that a caller
    (the criterion's flag checks) can name its own flag for it without reading the message."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


def check_distance_weighting(sigma: float, weight_max: float) -> None:
    """sigma > 0 and w_max in (0, 1] for :func:`distance_weights`."""
    if not sigma > 0:
        raise ArgumentError("sigma", f"sigma must be > 0, got {sigma}")
    if not 0.0 < weight_max <= 1.0:
        raise ArgumentError("weight_max", f"the weight cap must be in (0, 1], got {weight_max}")


def distance_weights(squared_distances: torch.Tensor, sigma: float, weight_max: float) -> torch.Tensor:
    """w = min(w_max, exp(-sigma d^2)) per position: fp32, no gradient.

    Args:
        squared_distances: [N] |e_y - e_yhat|^2 of the output embeddings of the gold token and
            of the model's top-1 prediction (0 where the prediction is the gold token;
            rounding below 0 is clamped).
    """
    check_distance_weighting(sigma, weight_max)
    with torch.no_grad():
        return torch.exp(-sigma * squared_distances.detach().float().clamp_min(0.0)).clamp_max_(weight_max)


def top1_distance_loss(
    picked: torch.Tensor,
    other_squared_distance: torch.Tensor,
    sigma: float,
    weight_max: float,
    alpha: float,
    epsilon: float = 0.0,
    vocab_size: int = None,
    smooth_loss: torch.Tensor = None,
    pad_mask: torch.Tensor = None,
    reduce: bool = True,
):
    """SKD's top-1 reading: (1 - alpha w) L_ls + alpha w (-log p(yhat)) per position, summed.

    yhat is the model's most probable token, which may be the gold token y: it is y where
    log p(y) >= log p(c) for c the most probable other token, else c. w is
    :func:`distance_weights` of |e_y - e_yhat|^2 (w_max where yhat = y), without gradient.

    Args:
        picked: [N, 2] log p of [y, c] (gradient flows into them).
        other_squared_distance: [N] |e_y - e_c|^2.
        sigma, weight_max: as :func:`distance_weights`.
        alpha: SKD weight in [0, 1].
        epsilon, vocab_size, smooth_loss, pad_mask, reduce: as :func:`skd_loss_from_entries`;
            pad_mask is [N, 1] and smooth_loss [N, 1].

    Returns:
        (loss, nll_loss, top1_loss, weight [N], top1_is_gold [N] bool): top1_loss is
        -log p(yhat); weight and top1_is_gold are 0 / False at padding.
    """
    _check_mix(alpha, epsilon, smooth_loss, vocab_size)
    with torch.no_grad():
        top1_is_gold = picked[:, 0].detach() >= picked[:, 1].detach()
        squared = torch.where(top1_is_gold, torch.zeros_like(other_squared_distance), other_squared_distance)
        weight = distance_weights(squared, sigma, weight_max)
    nll_loss = -picked[:, 0]
    top1_loss = -torch.where(top1_is_gold, picked[:, 0], picked[:, 1])
    ls_loss = _label_smoothed(nll_loss, None if smooth_loss is None else smooth_loss.squeeze(-1), epsilon, vocab_size)
    loss = (1.0 - alpha * weight) * ls_loss + (alpha * weight) * top1_loss
    if pad_mask is not None:
        real = ~pad_mask.squeeze(-1)
        loss, nll_loss, top1_loss = (t.masked_fill(~real, 0.0) for t in (loss, nll_loss, top1_loss))
        weight = weight.masked_fill(~real, 0.0)
        top1_is_gold = top1_is_gold & real
    if reduce:
        loss, nll_loss, top1_loss = loss.sum(), nll_loss.sum(), top1_loss.sum()
    return loss, nll_loss, top1_loss, weight, top1_is_gold
