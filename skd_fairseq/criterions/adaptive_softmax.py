"""The criteria's view of a decoder with an adaptive softmax: log-probabilities of chosen entries.

fairseq's ``get_normalized_probs`` would build the [N, V] matrix (and, given targets,
leave the clusters no target needs at 0), so the criteria never call it on such a model.
:class:`AdaptiveScores` stands where the full-softmax path holds ``lprobs``: it computes the
head once and the tail clusters only for the (position, cluster) pairs asked for.
"""

import torch
import torch.nn.functional as F

from ..adaptive import embedding_rows, entry_log_probs, needed_rows, running_topk
from .fairseq_access import adaptive_parts


def adaptive_softmax_of(model):
    return getattr(model.decoder, "adaptive_softmax", None)


def adaptive_cross_entropy(adaptive_softmax, hidden, target, padding_idx, reduce=True):
    """fairseq's ``adaptive_loss``, with the same operations in the same order (bit for bit)."""
    logits, targets = adaptive_softmax(hidden, target)
    loss = hidden.new(1 if reduce else target.numel()).zero_()
    for i in range(len(targets)):
        if targets[i] is not None:
            loss += F.cross_entropy(
                logits[i], targets[i], ignore_index=padding_idx, reduction="sum" if reduce else "none"
            )
    return loss


class AdaptiveScores:
    """log p of chosen entries under an adaptive softmax, for decoder features [B, T, D].

    The module's dropout (on its input, and inside each tail) is drawn once per forward, so
    every entry of a position sees the same masks, however often ``log_probs`` and ``topk``
    are called (e.g. predicted candidates, then SKD's entries): the head is computed once,
    each tail's dropout mask is drawn once for all positions, and a call projects only the
    rows it needs.
    """

    def __init__(self, adaptive_softmax, features):
        self.softmax = adaptive_softmax
        self.features = features
        self.parts = adaptive_parts(adaptive_softmax)
        self.vocab_size = self.parts.vocab_size
        self._hidden = None
        self._head_logits = None
        self._tail_masks = [None] * len(adaptive_softmax.tail)

    def size(self, dim):  # what predicted_topk and the KD helpers ask of lprobs
        if dim in (-1, 1):
            return self.vocab_size
        return self.features.numel() // self.features.size(-1)

    def hidden(self):
        if self._hidden is None:
            flat = self.features.contiguous().view(-1, self.features.size(-1))
            self._hidden = self.softmax.dropout_module(flat)
            self._head_logits = self.softmax.head(self._hidden)
        return self._hidden

    def tail_hidden(self, i, rows=None):
        """Tail i's projected, dropped-out hidden states of ``rows`` (all positions by default):
        fairseq's tail[0] then tail[1] (an nn.Dropout: ``adaptive_parts`` checks the layout), with
        tail[1]'s mask drawn once per position."""
        h = self.hidden()
        projection, dropout = self.softmax.tail[i][0], self.softmax.tail[i][1]
        z = projection(h if rows is None else h[rows])
        if not (dropout.training and dropout.p > 0):
            return z
        if self._tail_masks[i] is None:  # nn.Dropout's mask (0 or 1 / (1 - p)) for every position
            self._tail_masks[i] = F.dropout(h.new_ones(h.size(0), z.size(-1)), dropout.p, training=True)
        mask = self._tail_masks[i]
        return z * (mask if rows is None else mask[rows])

    def log_probs(self, entries):
        """[N, m] log p(entries) (gradient into the model)."""
        self.hidden()  # the head's logits, also when every entry is a head word
        rows = needed_rows(entries, self.parts.cutoff)
        z = [self.tail_hidden(i, r) if r is not None else None for i, r in enumerate(rows)]
        return entry_log_probs(self._head_logits, z, rows, self.parts.tail_out, self.parts.cutoff, entries)

    def topk(self, k, exclude, target):
        """The k most probable tokens of the full distribution (no gradient), cluster by cluster."""
        self.hidden()  # outside no_grad: the loss reuses it (and the tails' masks)
        with torch.no_grad():
            z = [self.tail_hidden(i) for i in range(len(self.softmax.tail))]
            head = torch.log_softmax(self._head_logits.float(), dim=-1)
            return running_topk(head, z, self.parts.tail_out, self.parts.cutoff, k, exclude, target)

    def embedding_rows(self, ids):
        """e_w for ``ids`` (fp32, no gradient)."""
        return embedding_rows(self.parts, ids)
