"""The SKD soft target and loss, as pure functions on tensors. No fairseq imports here.

Per target position with gold token t, candidates c_1..c_k and entries [t, c_1..c_k]:

    q       = softmax( s(e_t, e_[t, c_1..c_k]) / tau )        (fp32, no gradient)
    L_skd   = - sum_j q_j log p(entry_j)
    L       = (1 - alpha) L_ls + alpha L_skd

where L_ls is fairseq's label-smoothed NLL (``label_smoothed_nll_loss``).
"""

import torch

from .similarity import EmbeddingSimilarity

# Rows of the [rows, k+1, D] fp32 gather per block: at most this many values (64 MiB).
_SOFT_TARGET_BLOCK_ELEMENTS = 1 << 24


def skd_soft_targets(
    embeddings: torch.Tensor,
    target: torch.Tensor,
    candidates: torch.Tensor,
    similarity: str,
    temperature: float,
) -> torch.Tensor:
    """q over [t, c_1..c_k] for each position.

    Args:
        embeddings: [V, D] output embedding matrix.
        target: [N] gold ids.
        candidates: [N, k] candidate ids.
        similarity: ``cosine``, ``l2`` or ``dot``.
        temperature: tau > 0.

    Returns:
        FloatTensor [N, k+1] (fp32, rows sum to 1, no gradient); column 0 is the gold token.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    similarity_of = EmbeddingSimilarity(embeddings, similarity)
    entries = torch.cat([target.unsqueeze(-1), candidates], dim=-1)
    n, width = entries.shape
    rows = max(1, _SOFT_TARGET_BLOCK_ELEMENTS // (width * embeddings.size(1)))
    q = torch.empty(n, width, dtype=torch.float32, device=embeddings.device)
    with torch.no_grad():
        for start in range(0, n, rows):
            block = entries[start : start + rows]
            sims = similarity_of.pairs(block[:, 0], block)
            q[start : start + rows] = torch.softmax(sims / temperature, dim=-1)
    return q


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
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    entries = torch.cat([target.unsqueeze(-1), candidates], dim=-1)
    # One gather serves the NLL (column 0) and L_skd, so the backward pass scatters
    # into an [N, V] gradient once, as plain label smoothing does.
    picked = lprobs.gather(dim=-1, index=entries)
    nll_loss = -picked[:, :1]
    smooth_loss = -lprobs.sum(dim=-1, keepdim=True)
    skd_loss = -(soft_targets * picked).sum(dim=-1, keepdim=True)
    if ignore_index is not None:
        pad_mask = target.unsqueeze(-1).eq(ignore_index)
        nll_loss.masked_fill_(pad_mask, 0.0)
        smooth_loss.masked_fill_(pad_mask, 0.0)
        skd_loss.masked_fill_(pad_mask, 0.0)
    nll_loss, smooth_loss, skd_loss = nll_loss.squeeze(-1), smooth_loss.squeeze(-1), skd_loss.squeeze(-1)
    if reduce:
        nll_loss, smooth_loss, skd_loss = nll_loss.sum(), smooth_loss.sum(), skd_loss.sum()
    eps_i = epsilon / (lprobs.size(-1) - 1)
    ls_loss = (1.0 - epsilon - eps_i) * nll_loss + eps_i * smooth_loss
    if alpha == 0:
        return ls_loss, nll_loss, skd_loss
    return (1.0 - alpha) * ls_loss + alpha * skd_loss, nll_loss, skd_loss
