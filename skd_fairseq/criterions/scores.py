"""The SKD criterion's view of a full softmax: what it asks of the model's scores, as
:class:`~skd_fairseq.criterions.adaptive_softmax.AdaptiveScores` answers it for an adaptive one."""

from typing import Callable, List

import torch

from ..losses import pair_similarities
from ..neighbours import Space, predicted_topk
from ..similarity import EmbeddingSimilarity


class FullScores:
    """log-probabilities [N, V] and the output embedding E [V, D] (read when first needed)."""

    def __init__(self, lprobs: torch.Tensor, embedding: Callable[[], torch.Tensor]):
        self.lprobs = lprobs
        self._embedding = embedding
        self._weight = None

    @property
    def vocab_size(self) -> int:
        return self.lprobs.size(-1)

    def embedding(self) -> torch.Tensor:
        if self._weight is None:
            self._weight = self._embedding()
        return self._weight

    def log_probs(self, entries: torch.Tensor, cluster_local: bool = False) -> torch.Tensor:
        """[N, m] log p(entries), gradient into the model (one gather: the backward pass
        scatters into an [N, V] gradient once, as plain label smoothing does)."""
        return self.lprobs.gather(dim=-1, index=entries)

    def smooth_loss(self) -> torch.Tensor:
        """[N, 1] -sum_w log p(w), label smoothing's other term."""
        return -self.lprobs.sum(dim=-1, keepdim=True)

    def topk(self, k: int, exclude, target: torch.Tensor) -> torch.Tensor:
        return predicted_topk(self.lprobs, target, k, exclude=exclude)

    def neighbour_spaces(self) -> List[Space]:
        return [Space(self.embedding().detach())]

    def random_pools(self, admissible: torch.Tensor, target: torch.Tensor):
        return None  # every admissible token

    def seen_per_cluster(self, seen: torch.Tensor) -> torch.Tensor:
        """How many admissible tokens have been seen as a target: [1] (one pool for all)."""
        return seen.sum().unsqueeze(0)

    def pair_similarities(self, target: torch.Tensor, entries: torch.Tensor, similarity: str) -> torch.Tensor:
        return pair_similarities(EmbeddingSimilarity(self.embedding(), similarity), target, entries)
