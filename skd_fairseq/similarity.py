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
# Rows per block when a pass over every row builds a copy (norms, against_all's factor).
_ROWS_PER_BLOCK = 1024


def check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}")


class EmbeddingSimilarity:
    """s(e_a, e_b) for rows of an embedding matrix E [V, D] of any float dtype.

    Row norms are computed once, in fp32; dot products are taken in fp32 on the rows
    actually needed, so no fp32 copy of E is made except the one that :meth:`against_all`
    multiplies with (transposed, and already divided by the norms for cosine).

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
        self._norms = None
        self._right = None  # against_all's right factor [d', V], fp32, contiguous

    def _rows(self, ids=None, start=0, end=None) -> torch.Tensor:
        """fp32 rows (``ids``, or the slice start:end) and, with a Gram matrix, their w G."""
        rows = (self.weight[start:end] if ids is None else self.weight.index_select(0, ids)).float()
        return rows, (rows if self.gram is None else rows @ self.gram)

    @property
    def norms(self):
        """|e| per row (cosine) or |e|^2 (l2), fp32; None for dot."""
        if self.similarity == "dot":
            return None
        if self._norms is None:
            # e.e (w G w^T with a Gram matrix), a block of rows at a time: no fp32 copy of E
            squared = torch.empty(self.weight.size(0), dtype=torch.float32, device=self.weight.device)
            for start in range(0, self.weight.size(0), _ROWS_PER_BLOCK):
                rows, left = self._rows(start=start, end=start + _ROWS_PER_BLOCK)
                squared[start : start + _ROWS_PER_BLOCK] = (left * rows).sum(-1)
            self._norms = self._finish_norms(squared)
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

    def _factor(self, rows: torch.Tensor, norms, left: bool) -> torch.Tensor:
        """A row's factor of against_all's product, so that one matrix product gives the similarity
        itself: cosine, rows / |e| (a zero row stays zero); l2, [2 e, -1, -|e|^2] on the left and
        [e, |e|^2, 1] on the right (2 a.b - |b|^2 - |a|^2); dot, the rows."""
        if self.similarity == "cosine":
            return rows / norms.clamp_min(_NORM_EPS).unsqueeze(1)
        if self.similarity == "l2":
            ones = torch.ones_like(norms).unsqueeze(1)
            if left:
                return torch.cat([rows * 2, -ones, -norms.unsqueeze(1)], 1)
            return torch.cat([rows, norms.unsqueeze(1), ones], 1)
        return rows

    def _right_factor(self) -> torch.Tensor:
        """[d', V] fp32, contiguous (a matrix product reads it fastest so), built a block at a time:
        the one copy of E that against_all keeps."""
        if self._right is None:
            vocab = self.weight.size(0)
            width = self.weight.size(1) + (2 if self.similarity == "l2" else 0)
            self._right = torch.empty(width, vocab, dtype=torch.float32, device=self.weight.device)
            for start in range(0, vocab, _ROWS_PER_BLOCK):
                rows, _ = self._rows(start=start, end=start + _ROWS_PER_BLOCK)
                norms = None if self.norms is None else self.norms[start : start + _ROWS_PER_BLOCK]
                self._right[:, start : start + rows.size(0)] = self._factor(rows, norms, left=False).t()
        return self._right

    def against_all(self, query_ids: torch.Tensor, out: torch.Tensor = None) -> torch.Tensor:
        """[len(query_ids), V]: each queried row against every row, written into ``out`` when
        given (a buffer reused from block to block: no fresh pages for every block)."""
        _, left = self._rows(query_ids)
        norms = None if self.norms is None else self.norms.index_select(0, query_ids)
        return torch.mm(self._factor(left, norms, left=True), self._right_factor(), out=out)

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
