"""Word-level knowledge distillation from a teacher, as pure functions on tensors. No fairseq here.

Per target position, with the student's and each teacher's log-probabilities over V and a
temperature T (p^(T) = softmax(log p / T), which is softmax(logits / T)):

    p_t^(T) = mean over the teachers of p_teacher^(T)          (probability space, fp32, no gradient)
    q       = p_t^(T), or its top-K entries renormalised         (--kd-teacher-topk K)
            = softmax(log p_t * T_c / T) over the K tokens a teacher cache stored at T_c
              (--kd-teacher-cache: :func:`cached_teacher_distribution`)
    KL      = sum_w q(w) (log q(w) - log p_s^(T)(w))
    L       = (1 - beta) L_data + beta L_teacher,   L_teacher = T^2 KL  (word-level KD)

L_data is the student criterion's own loss (label-smoothed NLL, mixed with SKD when
--skd-alpha > 0); T^2 keeps the gradient's scale independent of T (Hinton et al. 2015).
TIE-KD (Zhang et al. 2023) adds a ranking loss over the top-k to L_teacher
(:func:`tie_ranking_loss`) and averages L_teacher over decoder passes.
"""

from typing import Iterable, Optional, Tuple

import torch


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 where it is in half precision (fp16/bf16); fp32 and fp64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def tempered_log_probs(lprobs: torch.Tensor, temperature: float) -> torch.Tensor:
    """log p^(T) in fp32 (fp64 for fp64 input) from log-probabilities (or logits): log_softmax(x / T)."""
    if temperature == 1.0:
        return at_least_fp32(lprobs)
    return torch.log_softmax(at_least_fp32(lprobs) / temperature, dim=-1)


def averaged_teacher_probs(teacher_lprobs: Iterable[torch.Tensor], temperature: float) -> torch.Tensor:
    """p_t^(T): the teachers' tempered distributions averaged in probability space, [N, V] in fp32
    (fp64 for fp64 teachers).

    ``teacher_lprobs``: one [N, V] tensor of log-probabilities per teacher, consumed one at a
    time (an ensemble costs one [N, V] buffer, not one per teacher). No gradient.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    with torch.no_grad():
        probs, count = None, 0
        for lprobs in teacher_lprobs:
            p = tempered_log_probs(lprobs, temperature).exp()  # not in place: may be the input
            probs = p if probs is None else probs.add_(p)
            count += 1
        if probs is None:
            raise ValueError("a teacher distribution needs at least one teacher")
        return probs.div_(count) if count > 1 else probs


def teacher_distribution(
    teacher_lprobs: Iterable[torch.Tensor],
    temperature: float,
    topk: int = 0,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """q: :func:`averaged_teacher_probs`, all of it or its top K renormalised.

    Args:
        teacher_lprobs: one [N, V] tensor of log-probabilities per teacher.
        temperature: T > 0.
        topk: 0 keeps all V entries; K >= 1 keeps each position's K most probable tokens,
            renormalised to sum to 1.

    Returns:
        (probs, ids): [N, V] and None, or [N, K] and LongTensor [N, K] (most probable first), in
        fp32 (fp64 for fp64 teachers); no gradient.
    """
    if topk < 0:
        raise ValueError(f"topk must be >= 0, got {topk}")
    probs = averaged_teacher_probs(teacher_lprobs, temperature)
    if topk == 0 or topk >= probs.size(-1):
        return probs, None
    top, ids = probs.topk(topk, dim=-1)
    return top.div_(top.sum(dim=-1, keepdim=True)), ids


def teacher_topk_log_probs(
    teacher_lprobs: Iterable[torch.Tensor], temperature: float, k: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """What a teacher cache stores per position: the K most probable tokens of
    :func:`averaged_teacher_probs` (most probable first) and their log-probabilities, not
    renormalised (so the mass the top K keep stays visible). No gradient."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    probs = averaged_teacher_probs(teacher_lprobs, temperature)
    top, ids = probs.topk(min(k, probs.size(-1)), dim=-1)
    return top.log_(), ids


def cached_teacher_distribution(
    stored_lprobs: torch.Tensor,
    ids: torch.Tensor,
    cache_temperature: float,
    temperature: float,
    topk: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """q at temperature T from a cache's top-K log-probabilities stored at temperature T_c.

    For one teacher, stored = logits / T_c - log Z, so softmax(stored * T_c / T) over the kept
    tokens is p^(T) renormalised over them: exactly :func:`teacher_distribution` with the same
    ``topk``. For an ensemble (averaged in probability space at T_c) that holds at T = T_c only;
    the caller refuses other temperatures.

    Args:
        stored_lprobs: [N, K] log-probabilities, most probable first (any float dtype).
        ids: [N, K] their token ids.
        cache_temperature, temperature: T_c and T, both > 0.
        topk: keep the first ``topk`` of the K (0: all K); at most K.

    Returns:
        (probs, ids): [N, k] renormalised, fp32 (fp64 from fp64 storage), and LongTensor [N, k];
        no gradient.
    """
    if not (cache_temperature > 0 and temperature > 0):
        raise ValueError(f"temperatures must be > 0, got {cache_temperature} and {temperature}")
    stored = stored_lprobs.size(-1)
    if not 0 <= topk <= stored:
        raise ValueError(f"topk must be in [0, {stored}] (the tokens the cache keeps), got {topk}")
    k = topk or stored
    with torch.no_grad():
        scaled = at_least_fp32(stored_lprobs[:, :k])
        if cache_temperature != temperature:
            scaled = scaled * (cache_temperature / temperature)
        return torch.softmax(scaled, dim=-1), ids[:, :k].long()


def kl_to_teacher(
    student_lprobs: torch.Tensor,
    teacher_probs: torch.Tensor,
    teacher_ids: Optional[torch.Tensor] = None,
    pad_mask: Optional[torch.Tensor] = None,
    reduce: bool = True,
) -> torch.Tensor:
    """KL(q || p_s^(T)) per position (summed when ``reduce``), gradient into the student.

    Args:
        student_lprobs: [N, V] tempered student log-probabilities (:func:`tempered_log_probs`).
        teacher_probs: [N, V] or [N, K] q from :func:`teacher_distribution`.
        teacher_ids: None for a full-vocabulary q, else [N, K] the ids of its entries.
        pad_mask: [N] bool, True where the position is padding (contributes 0).
    """
    if teacher_ids is not None:
        student_lprobs = student_lprobs.gather(dim=-1, index=teacher_ids)
    # xlogy: 0 log 0 = 0 for tokens the teacher gives no mass. The two sums are taken one after the
    # other, so at most one [N, V] temporary is alive at a time (not three); their difference costs
    # about eps * entropy per position (~1e-6 nats in fp32 at V 8,000) in the value, none in the
    # gradient (-q either way).
    kl = torch.xlogy(teacher_probs, teacher_probs).sum(dim=-1)
    kl = kl - (teacher_probs * student_lprobs).sum(dim=-1)
    if pad_mask is not None:
        kl = kl.masked_fill(pad_mask, 0.0)
    return kl.sum() if reduce else kl


def mix_with_teacher(data_loss: torch.Tensor, teacher_loss: torch.Tensor, beta: float):
    """(1 - beta) L_data + beta L_teacher."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    return (1.0 - beta) * data_loss + beta * teacher_loss


def tie_ranking_loss(
    student_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
    teacher_ids: Optional[torch.Tensor],
    k: int,
    pad_mask: Optional[torch.Tensor] = None,
    reduce: bool = True,
) -> torch.Tensor:
    """TIE-KD's hierarchical ranking loss per position (summed when ``reduce``).

    With the teacher's top-k tokens t_1..t_k (most probable first), the student's own
    top-k tokens s_1..s_k, student probabilities p_s and teacher probabilities p_t:

        L_top1  = sum_{j=2..k} max(0, p_s(t_j) - p_s(t_1))
        L_topk  = sum_{i,j=1..k} [p_t(t_i) > p_t(s_j)] max(0, p_s(s_j) - p_s(t_i))
        L_rank  = L_top1 + L_topk

    L_top1 makes the student rank the teacher's top-1 above the teacher's other top-k;
    L_topk makes it rank the teacher's top-k above its own top-k tokens that the teacher
    ranks lower. Hinges without margin on probabilities, as in the authors' code.

    Args:
        student_probs: [N, V] p_s (gradient flows into it).
        teacher_probs, teacher_ids: q from :func:`teacher_distribution` (full [N, V] with
            None, or top-K [N, K] with ids, K >= k; tokens outside the top-K have p_t = 0).
        k: the ranked top-k, >= 1.
    """
    width = teacher_probs.size(-1)
    if not 1 <= k <= width:
        raise ValueError(f"k must be in [1, {width}] (the teacher's kept tokens), got {k}")
    if teacher_ids is None:
        teacher_top, teacher_top_ids = teacher_probs.topk(k, dim=-1)
    else:  # teacher_distribution keeps its top-K sorted, most probable first
        teacher_top, teacher_top_ids = teacher_probs[:, :k], teacher_ids[:, :k]
    student_top, student_top_ids = student_probs.topk(k, dim=-1)
    student_at_teacher_top = student_probs.gather(-1, teacher_top_ids)
    with torch.no_grad():
        if teacher_ids is None:
            teacher_at_student_top = teacher_probs.gather(-1, student_top_ids)
        else:
            same = student_top_ids.unsqueeze(-1).eq(teacher_ids.unsqueeze(-2))  # [N, k, K]
            teacher_at_student_top = (same * teacher_probs.unsqueeze(-2)).sum(-1)
        teacher_prefers = teacher_top.unsqueeze(-1) > teacher_at_student_top.unsqueeze(-2)  # [N, k, k]
    top1 = (student_at_teacher_top[:, 1:] - student_at_teacher_top[:, :1]).clamp_min(0).sum(-1)
    topk_violations = (student_top.unsqueeze(-2) - student_at_teacher_top.unsqueeze(-1)).clamp_min(0)
    loss = top1 + (topk_violations * teacher_prefers).sum(dim=(-2, -1))
    if pad_mask is not None:
        loss = loss.masked_fill(pad_mask, 0.0)
    return loss.sum() if reduce else loss
