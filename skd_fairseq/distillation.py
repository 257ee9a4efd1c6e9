"""Word-level knowledge distillation from a teacher, as pure functions on tensors. No fairseq here.

Per target position, with the student's and each teacher's log-probabilities over V and a
temperature T (p^(T) = softmax(log p / T), which is softmax(logits / T)):

    p_t^(T) = mean over the teachers of p_teacher^(T)          (probability space, fp32, no gradient)
    q       = p_t^(T), or its top-K entries renormalised         (--kd-teacher-topk K)
    KL      = sum_w q(w) (log q(w) - log p_s^(T)(w))
    L       = (1 - beta) L_data + beta T^2 KL

L_data is the student criterion's own loss (label-smoothed NLL, mixed with SKD when
--skd-alpha > 0); T^2 keeps the gradient's scale independent of T (Hinton et al. 2015).
"""

from typing import Iterable, Optional, Tuple

import torch


def tempered_log_probs(lprobs: torch.Tensor, temperature: float) -> torch.Tensor:
    """log p^(T) in fp32 from log-probabilities (or logits): log_softmax(x / T)."""
    if temperature == 1.0:
        return lprobs.float()
    return torch.log_softmax(lprobs.float() / temperature, dim=-1)


def teacher_distribution(
    teacher_lprobs: Iterable[torch.Tensor],
    temperature: float,
    topk: int = 0,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """q: the teachers' tempered distributions averaged in probability space.

    Args:
        teacher_lprobs: one [N, V] tensor of log-probabilities per teacher (consumed one at
            a time, so an ensemble costs one [N, V] buffer, not one per teacher).
        temperature: T > 0.
        topk: 0 keeps all V entries; K >= 1 keeps each position's K most probable tokens,
            renormalised to sum to 1.

    Returns:
        (probs, ids): fp32 [N, V] and None, or fp32 [N, K] and LongTensor [N, K]; no gradient.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if topk < 0:
        raise ValueError(f"topk must be >= 0, got {topk}")
    with torch.no_grad():
        probs, count = None, 0
        for lprobs in teacher_lprobs:
            p = tempered_log_probs(lprobs, temperature).exp()  # not in place: may be the input
            probs = p if probs is None else probs.add_(p)
            count += 1
        if probs is None:
            raise ValueError("teacher_distribution needs at least one teacher")
        if count > 1:
            probs.div_(count)
        if topk == 0 or topk >= probs.size(-1):
            return probs, None
        top, ids = probs.topk(topk, dim=-1)
        return top.div_(top.sum(dim=-1, keepdim=True)), ids


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
    # xlogy: 0 log 0 = 0 for tokens the teacher gives no mass.
    kl = (torch.xlogy(teacher_probs, teacher_probs) - teacher_probs * student_lprobs).sum(dim=-1)
    if pad_mask is not None:
        kl = kl.masked_fill(pad_mask, 0.0)
    return kl.sum() if reduce else kl


def mix_with_teacher(data_loss: torch.Tensor, kl: torch.Tensor, beta: float, temperature: float):
    """(1 - beta) L_data + beta T^2 KL."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    return (1.0 - beta) * data_loss + (beta * temperature * temperature) * kl
