"""The criteria's view of a model's output distribution: :class:`Scores`, answered for a full
softmax by :class:`FullScores` ([N, V] log-probabilities) and for an adaptive softmax by
:class:`~skd_fairseq.criterions.adaptive_softmax.AdaptiveScores` (only the entries asked for), so
that no criterion branches on the kind of softmax."""

from abc import ABC, abstractmethod
from typing import Callable, List, Optional

import torch
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

from ..distillation import tempered_log_probs
from ..losses import pair_similarities
from ..neighbours import Space, predicted_topk
from ..similarity import EmbeddingSimilarity


class Scores(ABC):
    """log p over a vocabulary of ``vocab_size`` for N flattened positions."""

    vocab_size: int
    # Whether log_probs groups positions by cluster on the host (an adaptive softmax): entries
    # known early are then worth announcing (AdaptiveScores.expect), to group them in the same sync.
    groups_positions = False

    @abstractmethod
    def log_probs(self, entries: torch.Tensor, cluster_local: bool = False) -> torch.Tensor:
        """[N, m] log p(entries), gradient into the model. ``cluster_local``: every entry of a
        position lies in its target's cluster (an adaptive softmax's cluster candidates)."""

    @abstractmethod
    def data_loss(self, target: torch.Tensor, epsilon: float, padding_idx: int, reduce: bool):
        """(loss, nll_loss) of the data term: label-smoothed NLL with ``epsilon``."""

    @abstractmethod
    def smooth_loss(self) -> Optional[torch.Tensor]:
        """[N, 1] -sum_w log p(w), label smoothing's other term (None where it is refused)."""

    @abstractmethod
    def topk(self, k: int, exclude, target: torch.Tensor) -> torch.Tensor:
        """[N, k] the most probable tokens (no gradient), never the target nor an excluded id."""

    @abstractmethod
    def neighbour_spaces(self) -> List[Space]:
        """The output-embedding spaces that neighbours are searched in."""

    @abstractmethod
    def random_pools(self, admissible: torch.Tensor, target: torch.Tensor):
        """Per position, the pool random candidates are drawn from (None: every admissible id)."""

    @abstractmethod
    def seen_per_cluster(self, seen: torch.Tensor) -> torch.Tensor:
        """How many admissible tokens have been seen as a target, per candidate pool."""

    @abstractmethod
    def pair_similarities(self, target: torch.Tensor, entries: torch.Tensor, similarity: str) -> torch.Tensor:
        """[N, m] s(e_target, e_entry), fp32, no gradient."""

    @abstractmethod
    def kd_log_probs(self, ids: Optional[torch.Tensor], temperature: float) -> torch.Tensor:
        """The student's log p^(T) for a teacher term: of ``ids`` [N, K], or of the whole
        vocabulary [N, V] when ``ids`` is None."""

    @abstractmethod
    def full_log_probs(self, needed_by: str) -> torch.Tensor:
        """[N, V] log p, for a loss that needs the whole distribution (``needed_by`` names it
        in the error where it cannot be had)."""


class FullScores(Scores):
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

    def log_probs(self, entries, cluster_local=False):
        # One gather: the backward pass scatters into an [N, V] gradient once, as plain label
        # smoothing does.
        return self.lprobs.gather(dim=-1, index=entries)

    def data_loss(self, target, epsilon, padding_idx, reduce):
        return label_smoothed_nll_loss(self.lprobs, target, epsilon, ignore_index=padding_idx, reduce=reduce)

    def smooth_loss(self):
        return -self.lprobs.sum(dim=-1, keepdim=True)

    def topk(self, k, exclude, target):
        return predicted_topk(self.lprobs, target, k, exclude=exclude)

    def neighbour_spaces(self):
        return [Space(self.embedding().detach())]

    def random_pools(self, admissible, target):
        return None  # every admissible token

    def seen_per_cluster(self, seen):
        return seen.sum().unsqueeze(0)  # one pool for all

    def pair_similarities(self, target, entries, similarity):
        return pair_similarities(EmbeddingSimilarity(self.embedding(), similarity), target, entries)

    def kd_log_probs(self, ids, temperature):
        tempered = tempered_log_probs(self.lprobs, temperature)
        return tempered if ids is None else tempered.gather(dim=-1, index=ids)

    def full_log_probs(self, needed_by):
        return self.lprobs
