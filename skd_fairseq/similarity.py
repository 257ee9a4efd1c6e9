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
    """

    def __init__(self, embeddings: torch.Tensor, similarity: str):
        check_similarity(similarity)
        self.similarity = similarity
        self.weight = embeddings.detach()
        self.norms = None
        if similarity != "dot":
            norms = torch.linalg.vector_norm(self.weight, dim=-1, dtype=torch.float32)
            self.norms = norms if similarity == "cosine" else norms.pow(2)
        self._fp32 = None

    def _combine_(self, dots, norms_a, norms_b):
        """Turn fp32 dot products into similarities in place (no second [rows, V] buffer)."""
        if self.similarity == "cosine":
            return dots.div_(norms_a.clamp_min(_NORM_EPS)).div_(norms_b.clamp_min(_NORM_EPS))
        if self.similarity == "l2":
            return dots.mul_(2).sub_(norms_a).sub_(norms_b)
        return dots

    def against_all(self, query_ids: torch.Tensor) -> torch.Tensor:
        """[len(query_ids), V]: each queried row against every row."""
        if self._fp32 is None:
            self._fp32 = self.weight.float()
        dots = self._fp32.index_select(0, query_ids) @ self._fp32.t()
        if self.norms is None:
            return dots
        return self._combine_(dots, self.norms.index_select(0, query_ids).unsqueeze(1), self.norms.unsqueeze(0))

    def pairs(self, ids_a: torch.Tensor, ids_b: torch.Tensor) -> torch.Tensor:
        """s(e_a, e_b) for a [N] against b [N, m]: a [N, m] tensor."""
        rows_a = self.weight.index_select(0, ids_a).float().unsqueeze(-1)
        rows_b = self.weight[ids_b].float()
        dots = torch.bmm(rows_b, rows_a).squeeze(-1)
        if self.norms is None:
            return dots
        return self._combine_(dots, self.norms[ids_a].unsqueeze(-1), self.norms[ids_b])
