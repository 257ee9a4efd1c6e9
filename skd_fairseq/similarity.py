"""Similarity between rows of an embedding matrix, always computed in fp32.

``s(a, b)`` is one of

* ``cosine``: a.b / (|a| |b|)   (0 when either row is zero, e.g. the padding row)
* ``l2``:     -|a - b|^2 = 2 a.b - |a|^2 - |b|^2
* ``dot``:    a.b

:class:`EmbeddingSimilarity` is the one implementation, with two access patterns:
a block of queries against every row (neighbour search) and aligned pairs of rows
(soft targets). No fairseq imports here.
"""

import torch

SIMILARITIES = ("cosine", "l2", "dot")

# Norms below this count as zero: the cosine of a zero row with anything is 0.
_NORM_EPS = 1e-6


def check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}"
        )


class EmbeddingSimilarity:
    """s(e_a, e_b) for rows of an embedding matrix E [V, D] of any float dtype.

    Row norms are computed once, in fp32; dot products are taken in fp32 on the rows
    actually needed, so no fp32 copy of E is made except for the full matrix product
    of :meth:`against_all`.

    With ``gram`` G [d, d] the rows are coordinates w_a of embeddings e_a = P^T w_a that live
    in the span of a projection P [d, D] with G = P P^T: e_a . e_b = w_a G w_b^T exactly, so
    the similarities of the D-dimensional embeddings come from d-dimensional rows (an adaptive
    softmax's tail cluster: e_w = P_i^T W_i[w]).
    """

    def __init__(self, embeddings: torch.Tensor, similarity: str, gram: torch.Tensor = None):
        check_similarity(similarity)
        self.similarity = similarity
        self.weight = embeddings.detach()
        self.gram = None if gram is None else gram.detach().float()
        self._fp32 = None
        self._left = None  # w G for every row, fp32 (with a Gram matrix, for against_all only)
        self._norms = None

    def _fp32_rows(self) -> torch.Tensor:
        if self._fp32 is None:
            self._fp32 = self.weight.float()
        return self._fp32

    def _left_rows(self) -> torch.Tensor:
        """Every row as the left factor of a dot product: E itself, or w G with a Gram matrix."""
        if self.gram is None:
            return self._fp32_rows()
        if self._left is None:
            self._left = self._fp32_rows() @ self.gram
        return self._left

    @property
    def norms(self):
        """|e| per row (cosine) or |e|^2 (l2), fp32; None for dot."""
        if self.similarity == "dot":
            return None
        if self._norms is None:
            if self.gram is None:
                norms = torch.linalg.vector_norm(self.weight, dim=-1, dtype=torch.float32)
                self._norms = norms if self.similarity == "cosine" else norms.pow(2)
            else:
                self._norms = self._finish_norms((self._left_rows() * self._fp32_rows()).sum(-1))
        return self._norms

    def _finish_norms(self, squared):
        squared = squared.clamp_min(0.0)
        return squared.sqrt() if self.similarity == "cosine" else squared

    def _combine_(self, dots, norms_a, norms_b):
        """Turn fp32 dot products into similarities in place (no second [rows, V] buffer)."""
        if self.similarity == "cosine":
            return dots.div_(norms_a.clamp_min(_NORM_EPS)).div_(norms_b.clamp_min(_NORM_EPS))
        if self.similarity == "l2":
            return dots.mul_(2).sub_(norms_a).sub_(norms_b)
        return dots

    def against_all(self, query_ids: torch.Tensor) -> torch.Tensor:
        """[len(query_ids), V]: each queried row against every row."""
        dots = self._left_rows().index_select(0, query_ids) @ self._fp32_rows().t()
        if self.norms is None:
            return dots
        return self._combine_(dots, self.norms.index_select(0, query_ids).unsqueeze(1), self.norms.unsqueeze(0))

    def pairs(self, ids_a: torch.Tensor, ids_b: torch.Tensor) -> torch.Tensor:
        """s(e_a, e_b) for a [N] against b [N, m]: a [N, m] tensor."""
        rows_a = self.weight.index_select(0, ids_a).float()
        rows_b = self.weight[ids_b].float()
        if self.gram is None:
            dots = torch.bmm(rows_b, rows_a.unsqueeze(-1)).squeeze(-1)
            if self.similarity == "dot":
                return dots
            return self._combine_(dots, self.norms[ids_a].unsqueeze(-1), self.norms[ids_b])
        # Only the rows asked for go through G (a training step asks for a few of a cluster's rows).
        left_a = rows_a @ self.gram
        dots = torch.bmm(rows_b, left_a.unsqueeze(-1)).squeeze(-1)
        if self.similarity == "dot":
            return dots
        norms_a = self._finish_norms((left_a * rows_a).sum(-1))
        norms_b = self._finish_norms(((rows_b @ self.gram) * rows_b).sum(-1))
        return self._combine_(dots, norms_a.unsqueeze(-1), norms_b)
