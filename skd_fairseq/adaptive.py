"""SKD on an adaptive softmax (Grave et al., 2017), as pure functions on tensors. No fairseq imports here.

An adaptive softmax with cutoffs c_0 < c_1 < ... < c_n = V scores the head words
w < c_0 and one logit per tail cluster i (vocabulary [c_i, c_{i+1})) with a head matrix,
and the words of cluster i with W_i (P_i h):

    log p(w) = log softmax(head h)[w]                                   w in the head
    log p(w) = log softmax(head h)[c_0 + i] + log softmax(W_i P_i h)[w - c_i]    w in cluster i

**Output embedding.** Each token gets one vector e_w in the space of h whose dot product
with h is the logit the model computes for it: the head matrix's row for a head word, and
e_w = P_i^T W_i[w - c_i] for a word of cluster i. Neighbours and q then live in one space
for every cluster, and :func:`skd_fairseq.neighbours.embedding_topk` and
:func:`skd_fairseq.losses.skd_soft_targets` run on it unchanged.

**Entry-wise log-probabilities.** SKD needs log p of the gold token and its k candidates
only: the head's log-softmax (computed for every position, as ``adaptive_loss`` does) and,
for each (position, cluster) pair that occurs among the entries, the cluster's
log-normaliser log sum_v exp(W_i[v] . z) with z = P_i h. The normaliser is computed over
blocks of the cluster's vocabulary by :class:`ClusterLogNormaliser`, which keeps no
[positions, cluster] matrix for the backward pass (it recomputes the blocks), so memory
stays one block at a time.
"""

import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from .neighbours import Space, skip_mask

# Cluster vocabulary columns per block of the log-normaliser and the running top-k:
# at most this many fp32 values ([rows, block]) at once (64 MiB).
BLOCK_ELEMENTS = 1 << 24


@dataclass
class AdaptiveParts:
    """The weights of an adaptive softmax that SKD reads, in the convention of this module.

    cutoff: [c_0, ..., c_n] with c_n = V.
    head_words: [c_0, D] effective output embedding of the head words (head logit = row . h).
    tail_out: per cluster i, W_i [c_{i+1} - c_i, d_i] (within-cluster logit = W_i[j] . z).
    tail_proj: per cluster i, P_i [d_i, D] (z = P_i h, before the module's dropout).
    """

    cutoff: List[int]
    head_words: torch.Tensor
    tail_out: List[torch.Tensor]
    tail_proj: List[torch.Tensor]

    @property
    def vocab_size(self) -> int:
        return self.cutoff[-1]

    @property
    def dim(self) -> int:
        return self.head_words.size(1)


@functools.lru_cache(maxsize=64)
def cutoff_tensor(cutoff: Tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``cutoff`` as a LongTensor on ``device``, built once per (cutoff, device): a tensor made from
    a Python list per step would be a blocking host-to-device copy on a GPU."""
    return torch.tensor(cutoff, dtype=torch.long, device=device)


def cluster_of(ids: torch.Tensor, cutoff: Sequence[int]) -> torch.Tensor:
    """0 for head ids, i + 1 for ids of tail cluster i."""
    # bucketize copies a strided input (a slice of a candidate table) anyway; contiguous() does that
    # copy itself, without the UserWarning it would print into a user's training log.
    return torch.bucketize(ids.contiguous(), cutoff_tensor(tuple(cutoff[:-1]), ids.device), right=True)


def indices_by_row(member: torch.Tensor) -> List[Optional[torch.Tensor]]:
    """Per row of ``member`` [C, n] (bool), its True columns ascending, or None when it has none.

    One host sync for all rows (their counts), where a ``nonzero`` per row would make C.
    """
    counts = member.sum(dim=1).tolist()  # the one sync
    # A stable sort puts each row's True columns first, in ascending order.
    order = torch.argsort((~member).to(torch.uint8), dim=1, stable=True)
    return [order[i, :count] if count else None for i, count in enumerate(counts)]


def embedding_rows(parts: AdaptiveParts, ids: torch.Tensor) -> torch.Tensor:
    """e_w for ``ids`` [n]: fp32 [n, D], no gradient, no host sync: every cluster's rows are
    computed for all ids (at a clamped id) and the id's own cluster is kept, which costs n x d_i x D
    per tail and never groups the ids on the host."""
    with torch.no_grad():
        ids = ids.reshape(-1)
        cluster = cluster_of(ids, parts.cutoff).unsqueeze(1)
        out = parts.head_words[ids.clamp(max=parts.cutoff[0] - 1)].float()
        for i, (out_w, proj) in enumerate(zip(parts.tail_out, parts.tail_proj)):
            local = (ids - parts.cutoff[i]).clamp(0, out_w.size(0) - 1)
            out = torch.where(cluster.eq(i + 1), out_w[local].float() @ proj.float(), out)
        return out


def embedding_matrix(parts: AdaptiveParts, block_rows: Optional[int] = None) -> torch.Tensor:
    """E [V, D] fp32 (no gradient), built a block of one cluster at a time (no host sync)."""
    dim = parts.dim
    block_rows = block_rows or max(1, BLOCK_ELEMENTS // max(dim, 1))
    out = torch.empty(parts.vocab_size, dim, dtype=torch.float32, device=parts.head_words.device)
    with torch.no_grad():
        c0 = parts.cutoff[0]
        for start in range(0, c0, block_rows):
            out[start : min(start + block_rows, c0)] = parts.head_words[start : start + block_rows].float()
        for i, (out_w, proj) in enumerate(zip(parts.tail_out, parts.tail_proj)):
            first, proj = parts.cutoff[i], proj.float()
            for start in range(0, out_w.size(0), block_rows):
                block = out_w[start : start + block_rows].float()
                out[first + start : first + start + block.size(0)] = block @ proj
    return out


def _block_size(rows: int, cols: int) -> int:
    return max(1, min(cols, BLOCK_ELEMENTS // max(rows, 1)))


class ClusterLogNormaliser(torch.autograd.Function):
    """log sum_v exp(weight[v] . z) for each row of z, over blocks of the vocabulary.

    Forward keeps a running (max, sum); backward recomputes each block's softmax, so
    neither pass holds more than one [rows, block] matrix.
    """

    @staticmethod
    def forward(ctx, z, weight, block):
        zf, rows = z.float(), z.size(0)
        running_max = torch.full((rows,), float("-inf"), device=z.device)
        running_sum = torch.zeros(rows, device=z.device)
        for start in range(0, weight.size(0), block):
            logits = zf @ weight[start : start + block].float().t()
            block_max = logits.max(dim=1).values
            new_max = torch.maximum(running_max, block_max)
            running_sum = running_sum * torch.exp(running_max - new_max) + torch.exp(logits - new_max.unsqueeze(1)).sum(
                1
            )
            running_max = new_max
            del logits
        lse = running_max + torch.log(running_sum)
        ctx.save_for_backward(z, weight, lse)
        ctx.block = block
        return lse

    @staticmethod
    def backward(ctx, grad_lse):
        z, weight, lse = ctx.saved_tensors
        zf = z.float()
        grad_z = torch.zeros_like(zf) if ctx.needs_input_grad[0] else None
        grad_w = (
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        )
        g = grad_lse.float().unsqueeze(1)
        for start in range(0, weight.size(0), ctx.block):
            w = weight[start : start + ctx.block].float()
            weighted = torch.exp(zf @ w.t() - lse.unsqueeze(1)) * g  # softmax * upstream gradient
            if grad_z is not None:
                grad_z += weighted @ w
            if grad_w is not None:
                grad_w[start : start + ctx.block] = weighted.t() @ zf
            del weighted
        return (
            grad_z.to(z.dtype) if grad_z is not None else None,
            grad_w.to(weight.dtype) if grad_w is not None else None,
            None,
        )


def cluster_log_normaliser(z: torch.Tensor, weight: torch.Tensor, block: Optional[int] = None) -> torch.Tensor:
    """log sum_v exp(weight[v] . z) per row of z [rows, d]; weight [size, d]; fp32 [rows]."""
    block = block or _block_size(z.size(0), weight.size(0))
    return ClusterLogNormaliser.apply(z, weight, block)


def entry_log_probs(
    head_logits: torch.Tensor,
    cluster_inputs: Sequence[Optional[torch.Tensor]],
    cluster_rows: Sequence[Optional[torch.Tensor]],
    tail_out: Sequence[torch.Tensor],
    cutoff: Sequence[int],
    entries: torch.Tensor,
    block: Optional[int] = None,
) -> torch.Tensor:
    """log p(entries) of an adaptive softmax, without the [N, V] matrix.

    Args:
        head_logits: [N, c_0 + n] the head's logits for every position.
        cluster_inputs: per tail cluster i, z_i [R_i, d_i] (P_i h after the module's dropout)
            for the positions ``cluster_rows[i]``, or None when no entry is in cluster i.
        cluster_rows: per tail cluster i, the positions [R_i] (sorted) whose entries need
            cluster i, or None.
        tail_out: per tail cluster i, W_i [c_{i+1} - c_i, d_i].
        cutoff: [c_0, ..., c_n].
        entries: [N, m] token ids (e.g. the gold token and its k candidates).

    Returns:
        [N, m] fp32 log-probabilities; the gradient flows into the head logits, the z_i
        and the W_i.
    """
    head_lprobs = torch.log_softmax(head_logits.float(), dim=-1)
    cluster = cluster_of(entries, cutoff)
    c0 = cutoff[0]
    # Head entries read the head directly; tail entries read their cluster's prior first.
    head_index = torch.where(cluster.eq(0), entries, c0 + cluster - 1)
    out = head_lprobs.gather(1, head_index)
    for i, (z, rows) in enumerate(zip(cluster_inputs, cluster_rows)):
        if z is None:
            continue
        lse = cluster_log_normaliser(z, tail_out[i], block)
        # Only the cluster's rows: their entries' within-cluster logits (entries of other
        # clusters at those rows read a clamped id and are masked out).
        at_rows = entries[rows]
        local = (at_rows - cutoff[i]).clamp(0, tail_out[i].size(0) - 1)
        logits = (tail_out[i][local].float() * z.float().unsqueeze(1)).sum(-1)  # [R_i, m]
        within = torch.where(cluster[rows].eq(i + 1), logits - lse.unsqueeze(1), torch.zeros_like(logits))
        out = out.index_add(0, rows, within)
    return out


def _tail_membership(entries: torch.Tensor, cutoff: Sequence[int]) -> torch.Tensor:
    """[C - 1, N] bool: position n has an entry in tail cluster i."""
    tails = torch.arange(1, len(cutoff), device=entries.device).view(-1, 1, 1)
    return cluster_of(entries, cutoff).unsqueeze(0).eq(tails).any(dim=2)


def _cluster_membership(target: torch.Tensor, cutoff: Sequence[int]) -> torch.Tensor:
    """[C, N] bool: position n's target lies in cluster c (the head first)."""
    clusters = torch.arange(len(cutoff), device=target.device).unsqueeze(1)
    return cluster_of(target, cutoff).unsqueeze(0).eq(clusters)


def needed_rows(entries: torch.Tensor, cutoff: Sequence[int]) -> List[Optional[torch.Tensor]]:
    """Per tail cluster, the sorted positions with an entry in it (None when there is none).

    One host sync for all clusters (fairseq's own adaptive softmax makes one per cluster).
    """
    return indices_by_row(_tail_membership(entries, cutoff))


def running_topk(
    head_lprobs: torch.Tensor,
    cluster_inputs: Sequence[torch.Tensor],
    tail_out: Sequence[torch.Tensor],
    cutoff: Sequence[int],
    k: int,
    exclude: torch.Tensor,
    target: torch.Tensor,
    block: Optional[int] = None,
) -> torch.Tensor:
    """The k most probable tokens of the full adaptive distribution per position, never the
    target nor an excluded id, computed a block of one cluster at a time.

    Args:
        head_lprobs: [N, c_0 + n] log-softmax of the head.
        cluster_inputs: per tail cluster, z_i [N, d_i] for every position (no gradient needed).
        tail_out, cutoff: as :func:`entry_log_probs`.
        exclude: ids never returned, or a boolean mask [V] of them; target: [N] gold ids.

    Returns:
        LongTensor [N, k], most probable first.
    """
    with torch.no_grad():
        n = head_lprobs.size(0)
        c0 = cutoff[0]
        skip = skip_mask(exclude, cutoff[-1], head_lprobs.device)
        best_val = torch.full((n, k), float("-inf"), device=head_lprobs.device)
        best_idx = torch.zeros((n, k), dtype=torch.long, device=head_lprobs.device)

        def merge(values, ids):
            nonlocal best_val, best_idx
            values = values.masked_fill(skip[ids], float("-inf"))
            values = values.masked_fill(ids.eq(target.unsqueeze(1)), float("-inf"))
            best_val, best_idx = _merge_topk(best_val, best_idx, values, ids, k)

        head_ids = torch.arange(c0, device=head_lprobs.device)
        merge(head_lprobs[:, :c0].float(), head_ids.expand(n, c0))
        for i, (z, out_w) in enumerate(zip(cluster_inputs, tail_out)):
            zf = z.float()
            lse = cluster_log_normaliser(zf, out_w.detach(), block)
            prior = head_lprobs[:, c0 + i].float() - lse
            size = out_w.size(0)
            step = block or _block_size(n, size)
            for start in range(0, size, step):
                w = out_w[start : start + step].float()
                values = zf @ w.t() + prior.unsqueeze(1)
                ids = torch.arange(cutoff[i] + start, cutoff[i] + start + w.size(0), device=values.device)
                merge(values, ids.expand(n, -1))
        return best_idx


def cluster_spaces(parts: AdaptiveParts) -> List[Space]:
    """One :class:`~skd_fairseq.neighbours.Space` per cluster, each in the cluster's own space:
    the head words' rows of the head matrix (dimension D), and for tail cluster i its output
    matrix W_i with the Gram matrix G_i = P_i P_i^T, since e_a . e_b = W_i[a] G_i W_i[b]^T
    for e_w = P_i^T W_i[w]: similarities at d_i, not D, per pair (no gradient)."""
    c0 = parts.cutoff[0]
    spaces = [Space(parts.head_words, 0, None, f"the head cluster (ids 0 to {c0 - 1})")]
    for i, (out_w, proj) in enumerate(zip(parts.tail_out, parts.tail_proj)):
        p = proj.detach().float()
        first, end = parts.cutoff[i], parts.cutoff[i + 1]
        spaces.append(Space(out_w.detach(), first, p @ p.t(), f"tail cluster {i + 1} (ids {first} to {end - 1})"))
    return spaces


def grouped_rows(
    target: torch.Tensor, entry_sets: Sequence[torch.Tensor], cutoff: Sequence[int]
) -> Tuple[List[Optional[torch.Tensor]], List[List[Optional[torch.Tensor]]]]:
    """Per cluster (the head first), the sorted positions whose ``target`` lies in it, and
    :func:`needed_rows` of each of ``entry_sets`` ([N, m_j] each), in one host sync for all of them:
    (gold rows, [needed rows per set]); None for a cluster no position needs."""
    member = torch.cat([_cluster_membership(target, cutoff), *(_tail_membership(e, cutoff) for e in entry_sets)])
    rows, tails = indices_by_row(member), len(cutoff) - 1
    gold, needed = rows[: len(cutoff)], rows[len(cutoff) :]
    return gold, [needed[j * tails : (j + 1) * tails] for j in range(len(entry_sets))]


def cluster_pools(admissible: torch.Tensor, target: torch.Tensor, cutoff: Sequence[int]):
    """(lo, hi) [N]: the slice of the sorted ``admissible`` ids that lies in each target's cluster
    (entries >= V after the admissible ids, :meth:`SeenTargets.admissible`'s padding, lie in none)."""
    bounds = torch.searchsorted(admissible, cutoff_tensor((0, *cutoff), admissible.device))
    cluster = cluster_of(target, cutoff)
    return bounds[cluster], bounds[cluster + 1]


def _merge_topk(best_val, best_idx, values, ids, k):
    all_val = torch.cat([best_val, values], 1)
    all_idx = torch.cat([best_idx, ids], 1)
    top = all_val.topk(k, dim=1)
    return top.values, all_idx.gather(1, top.indices)


def within_cluster_topk(
    head_logits: torch.Tensor,
    cluster_inputs: Sequence[Optional[torch.Tensor]],
    cluster_rows: Sequence[Optional[torch.Tensor]],
    tail_out: Sequence[torch.Tensor],
    cutoff: Sequence[int],
    target: torch.Tensor,
    k: int,
    skip: torch.Tensor,
    block: Optional[int] = None,
) -> torch.Tensor:
    """The k most probable words of each target's own cluster, never the target nor a ``skip``
    id: for a head target among the head words, for a target of tail cluster i among cluster
    i's words (the order of log p there is that of W_i z: the cluster's prior and normaliser
    are the same for all its words). No gradient.

    Args:
        head_logits: [N, c_0 + n] the head's logits.
        cluster_inputs, cluster_rows: per tail cluster, z_i [R_i, d_i] and the positions R_i
            whose target is in cluster i (:func:`grouped_rows`' gold rows), or None.
        skip: bool [V], True for ids never returned.

    Returns:
        LongTensor [N, k], most probable first (head words for the positions of no tail row).
    """
    with torch.no_grad():
        n, c0 = head_logits.size(0), cutoff[0]
        device = head_logits.device
        rows_per_block = max(1, BLOCK_ELEMENTS // max(c0, 1))
        out = torch.empty(n, k, dtype=torch.long, device=device)
        for start in range(0, n, rows_per_block):  # every position's head top-k; tail rows are overwritten
            scores = head_logits[start : start + rows_per_block, :c0].float().masked_fill(skip[:c0], float("-inf"))
            own = target[start : start + rows_per_block]
            scores = scores.masked_fill(torch.arange(c0, device=device).eq(own.unsqueeze(1)), float("-inf"))
            out[start : start + rows_per_block] = scores.topk(k, dim=1).indices
        for i, (z, rows) in enumerate(zip(cluster_inputs, cluster_rows)):
            if z is None:
                continue
            zf, out_w, first = z.float(), tail_out[i], cutoff[i]
            own = target[rows]
            best_val = torch.full((rows.numel(), k), float("-inf"), device=device)
            best_idx = torch.zeros((rows.numel(), k), dtype=torch.long, device=device)
            step = block or _block_size(rows.numel(), out_w.size(0))
            for start in range(0, out_w.size(0), step):
                w = out_w[start : start + step].float()
                ids = torch.arange(first + start, first + start + w.size(0), device=device)
                values = (zf @ w.t()).masked_fill_(skip[ids], float("-inf"))
                values.masked_fill_(ids.eq(own.unsqueeze(1)), float("-inf"))
                best_val, best_idx = _merge_topk(best_val, best_idx, values, ids.expand(rows.numel(), -1), k)
            out[rows] = best_idx
        return out
