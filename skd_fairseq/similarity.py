"""Similarity between output embeddings, always computed in fp32.

``s(a, b)`` is one of

* ``cosine``: a.b / (|a| |b|)
* ``l2``:     -|a - b|^2
* ``dot``:    a.b

Two forms share these definitions: :func:`pairwise_similarity` for aligned rows
(soft targets) and :func:`similarity_matrix` for a block of queries against every
row of the vocabulary (neighbour search). No fairseq imports here.
"""

import torch
import torch.nn.functional as F

SIMILARITIES = ("cosine", "l2", "dot")

# Below this norm a row counts as zero (e.g. the padding row): its cosine with anything is 0.
_COSINE_EPS = 1e-12


def check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}"
        )


def pairwise_similarity(a: torch.Tensor, b: torch.Tensor, similarity: str) -> torch.Tensor:
    """s(a, b) over the last dimension of two broadcastable tensors, in fp32."""
    check_similarity(similarity)
    a, b = a.float(), b.float()
    if similarity == "cosine":
        a = F.normalize(a, dim=-1, eps=_COSINE_EPS)
        b = F.normalize(b, dim=-1, eps=_COSINE_EPS)
        return (a * b).sum(-1)
    if similarity == "dot":
        return (a * b).sum(-1)
    return -(a - b).pow(2).sum(-1)


class SimilarityKeys:
    """The vocabulary side of ``similarity_matrix``, prepared once per search.

    Holds the fp32 (and, for cosine, unit-normalised) embedding matrix, plus the
    squared row norms for ``l2``, so each query block costs one matrix product.
    """

    def __init__(self, embeddings: torch.Tensor, similarity: str):
        check_similarity(similarity)
        self.similarity = similarity
        keys = embeddings.detach().float()
        if similarity == "cosine":
            keys = F.normalize(keys, dim=-1, eps=_COSINE_EPS)
        self.keys = keys
        self.sq_norms = keys.pow(2).sum(-1) if similarity == "l2" else None

    def matrix(self, query_ids: torch.Tensor) -> torch.Tensor:
        """[len(query_ids), V] similarities of the given rows to every row."""
        queries = self.keys.index_select(0, query_ids)
        sims = queries @ self.keys.t()
        if self.similarity == "l2":
            # -|a-b|^2 = 2 a.b - |a|^2 - |b|^2
            sims.mul_(2).sub_(self.sq_norms.unsqueeze(0))
            sims.sub_(self.sq_norms.index_select(0, query_ids).unsqueeze(1))
        return sims


def similarity_matrix(
    embeddings: torch.Tensor, query_ids: torch.Tensor, similarity: str
) -> torch.Tensor:
    """[len(query_ids), V] fp32 similarities of the queried rows to all rows."""
    return SimilarityKeys(embeddings, similarity).matrix(query_ids)
