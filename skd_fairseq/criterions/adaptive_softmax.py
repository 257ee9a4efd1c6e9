"""The criteria's view of a decoder with an adaptive softmax: log-probabilities of chosen entries.

fairseq's ``get_normalized_probs`` would build the [N, V] matrix (and, given targets,
leave the clusters no target needs at 0), so the criteria never call it on such a model.
:class:`AdaptiveScores` stands where the full-softmax path holds ``lprobs``: it computes the
head once and the tail clusters only for the (position, cluster) pairs asked for.
"""

import torch
import torch.nn.functional as F

from ..adaptive import (
    cluster_pools,
    cluster_spaces,
    embedding_matrix,
    embedding_rows,
    entry_log_probs,
    grouped_rows,
    needed_rows,
    running_topk,
    within_cluster_topk,
)
from ..losses import pair_similarities
from ..neighbours import Space, check_k, skip_mask
from ..settings import ADAPTIVE_CANDIDATES
from ..similarity import EmbeddingSimilarity
from .fairseq_access import adaptive_parts
from .scores import Scores


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


class AdaptiveScores(Scores):
    """log p of chosen entries under an adaptive softmax, for decoder features [B, T, D].

    The module's dropout (on its input, and inside each tail) is drawn once per forward, so
    every entry of a position sees the same masks, however often ``log_probs`` and ``topk``
    are called (e.g. predicted candidates, then SKD's entries): the head is computed once,
    each tail's dropout mask is drawn once for all positions, and a call projects only the
    rows it needs.

    ``candidates`` (``--skd-adaptive-candidates``): ``cluster`` keeps SKD's candidates in the
    gold word's cluster, so a position needs only the tail that holds its target, the one
    ``adaptive_loss`` computes too, and the gold entry and the candidates share its projection
    and log-normaliser (``log_probs(..., cluster_local=True)``); ``any`` lets them lie anywhere.
    """

    groups_positions = True

    def __init__(self, adaptive_softmax, features, target=None, candidates="cluster"):
        if candidates not in ADAPTIVE_CANDIDATES:
            raise ValueError(f"unknown adaptive candidates {candidates!r}; choose one of {ADAPTIVE_CANDIDATES}")
        self.softmax = adaptive_softmax
        self.features = features
        self.target = target
        self.candidate_space = candidates  # --skd-adaptive-candidates: "cluster" or "any"
        self.parts = adaptive_parts(adaptive_softmax)
        self.vocab_size = self.parts.vocab_size
        self._hidden = None
        self._head_logits = None
        self._tail_masks = [None] * len(adaptive_softmax.tail)
        self._tail_z = [None] * len(adaptive_softmax.tail)  # (rows, z) of the last rows asked for
        self._gold_rows = None
        self._expected = None  # entries announced by expect(), and their rows once grouped
        self._expected_rows = None

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

    def expect(self, entries):
        """``entries`` [N, m] (a teacher's top K) will be asked for by a later :meth:`log_probs`:
        their positions are grouped by cluster with the gold words', in the step's one host sync."""
        if self._gold_rows is not None:
            raise RuntimeError("AdaptiveScores.expect() after the positions were grouped: announce entries first")
        self._expected = entries

    def gold_rows(self):
        """Per cluster (the head first), the positions whose target lies in it (one sync, once)."""
        if self._gold_rows is None:
            self._group()
        return self._gold_rows

    def _group(self, entries=None):
        """Groups the positions of the gold words, of the expected entries and of ``entries`` by
        cluster in one host sync; returns the rows ``entries`` need per tail."""
        sets = [e for e in (self._expected, entries) if e is not None]
        self._gold_rows, needed = grouped_rows(self.target, sets, self.parts.cutoff)
        if self._expected is not None:
            self._expected_rows = needed[0]
        return needed[-1] if entries is not None else None

    def _needed_rows(self, entries):
        """Per tail, the positions with an entry of ``entries`` in it: grouped with the gold words'
        and the expected entries' when they are not grouped yet, so a step syncs once."""
        if entries is self._expected:
            self.gold_rows()
            return self._expected_rows
        if self._gold_rows is None and self._expected is not None:
            return self._group(entries)
        return needed_rows(entries, self.parts.cutoff)

    def tail_hidden(self, i, rows=None):
        """Tail i's projected, dropped-out hidden states of ``rows`` (all positions by default):
        fairseq's tail[0] then tail[1] (an nn.Dropout: ``adaptive_parts`` checks the layout), with
        tail[1]'s mask drawn once per position. The last result is kept for the same ``rows``
        object, so the gold rows' projection is computed once per step."""
        cached = self._tail_z[i]
        if cached is not None and cached[0] is rows:
            return cached[1]
        h = self.hidden()
        projection, dropout = self.softmax.tail[i][0], self.softmax.tail[i][1]
        z = projection(h if rows is None else h[rows])
        if dropout.training and dropout.p > 0:
            if self._tail_masks[i] is None:  # nn.Dropout's mask (0 or 1 / (1 - p)) for every position
                self._tail_masks[i] = F.dropout(h.new_ones(h.size(0), z.size(-1)), dropout.p, training=True)
            mask = self._tail_masks[i]
            z = z * (mask if rows is None else mask[rows])
        self._tail_z[i] = (rows, z)
        return z

    def log_probs(self, entries, cluster_local=False):
        """[N, m] log p(entries) (gradient into the model). ``cluster_local``: every entry of a
        position lies in its target's cluster (cluster candidates), so the rows each tail needs
        are the gold rows, with no sync of their own."""
        self.hidden()  # the head's logits, also when every entry is a head word
        rows = self.gold_rows()[1:] if cluster_local else self._needed_rows(entries)
        z = [self.tail_hidden(i, r) if r is not None else None for i, r in enumerate(rows)]
        return entry_log_probs(self._head_logits, z, rows, self.parts.tail_out, self.parts.cutoff, entries)

    def nll(self, target, padding_idx, reduce=True):
        """-log p(target), 0 at padding: the full negative log-likelihood of every word (fairseq's
        adaptive_loss leaves out the word c_i + padding_idx of each tail cluster i; see README)."""
        lprobs = self.log_probs(target.unsqueeze(-1), cluster_local=True).squeeze(-1)
        loss = -lprobs.masked_fill(target.eq(padding_idx), 0.0)
        return loss.sum() if reduce else loss

    def data_loss(self, target, epsilon, padding_idx, reduce):
        """The full NLL (:meth:`nll`) twice, as (loss, nll_loss): ``epsilon`` is 0 here, since the
        criterion refuses label smoothing on an adaptive softmax before it builds this class."""
        loss = self.nll(target, padding_idx, reduce)
        return loss, loss

    def smooth_loss(self):
        return None  # label smoothing is refused on an adaptive softmax

    def kd_log_probs(self, ids, temperature):
        """log p of the teacher's ``ids`` only: the normaliser of p^(1/T) over the whole vocabulary,
        and the whole distribution, are what this class never computes."""
        if ids is None or temperature != 1.0:
            raise ValueError(
                "a teacher term on a student with an adaptive softmax needs --kd-teacher-topk K > 0 and "
                "temperature 1 (--kd-temperature 1; self-KD: --self-kd-temperature 1): the student's "
                "log-probabilities are computed for the teacher's K tokens only, and a temperature would need "
                "the normaliser of p^(1/T) over the whole vocabulary"
            )
        return self.log_probs(ids)

    def full_log_probs(self, needed_by):
        raise ValueError(
            f"{needed_by} needs the student's whole distribution, which an adaptive softmax does not "
            "compute; use label_smoothed_word_kd with --kd-teacher-topk K for such a student"
        )

    def topk(self, k, exclude, target):
        """The k most probable tokens (no gradient), never the target nor an excluded id: of the
        target's cluster (``cluster``) or of the whole distribution (``any``), a block at a time."""
        self.hidden()  # outside no_grad: the loss reuses it (and the tails' masks and projections)
        skip = skip_mask(exclude, self.vocab_size, target.device)
        if self.candidate_space == "cluster":
            rows = self.gold_rows()[1:]
            z = [self.tail_hidden(i, r) if r is not None else None for i, r in enumerate(rows)]
            return within_cluster_topk(
                self._head_logits, z, rows, self.parts.tail_out, self.parts.cutoff, target, k, skip
            )
        with torch.no_grad():
            z = [self.tail_hidden(i) for i in range(len(self.softmax.tail))]
            head = torch.log_softmax(self._head_logits.float(), dim=-1)
            return running_topk(head, z, self.parts.tail_out, self.parts.cutoff, k, exclude, target)

    def neighbour_spaces(self):
        """Where neighbours are searched: each cluster in its own space, or one [V, D] matrix."""
        if self.candidate_space == "cluster":
            return cluster_spaces(self.parts)
        return [Space(embedding_matrix(self.parts))]

    def random_pools(self, admissible, target):
        return cluster_pools(admissible, target, self.parts.cutoff) if self.candidate_space == "cluster" else None

    def check_candidates(self, k, excluded):
        """k must leave room in every cluster (``cluster``): a clear error naming the one that
        is too small."""
        if self.candidate_space != "cluster":
            return
        bounds = [0] + list(self.parts.cutoff)
        excluded = torch.as_tensor(excluded).cpu()
        for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            n_excluded = int(((excluded >= lo) & (excluded < hi)).sum())
            try:
                check_k(k, hi - lo, n_excluded)
            except ValueError as err:
                name = "the head cluster" if c == 0 else f"tail cluster {c}"
                raise ValueError(
                    f"--skd-topk {k} with --skd-adaptive-candidates cluster: {name} (ids {lo} to {hi - 1}) has "
                    f"{hi - lo} words, {n_excluded} of them excluded: {err}. Use a smaller --skd-topk or "
                    "--skd-adaptive-candidates any"
                ) from None

    def seen_per_cluster(self, seen):
        """How many admissible tokens have been seen as a target, per cluster (``cluster``: a
        position draws from its own) or in all ([1], ``any``)."""
        if self.candidate_space != "cluster":
            return seen.sum().unsqueeze(0)
        bounds = [0] + list(self.parts.cutoff)
        return torch.stack([seen[lo:hi].sum() for lo, hi in zip(bounds[:-1], bounds[1:])])

    def pair_similarities(self, target, entries, similarity):
        """s(e_target, e_entry) [N, m], fp32, no gradient. Cluster candidates: in each cluster's
        own space (a tail's from W_i and P_i P_i^T), by the gold rows; else from the rows e_w."""
        if self.candidate_space != "cluster":
            ids = torch.arange(entries.numel(), device=entries.device).view_as(entries)
            rows = embedding_rows(self.parts, entries.reshape(-1))
            return pair_similarities(EmbeddingSimilarity(rows, similarity), ids[:, 0], ids)
        out = torch.empty(entries.shape, dtype=torch.float32, device=entries.device)
        for space, rows in zip(cluster_spaces(self.parts), self.gold_rows()):
            if rows is None:
                continue
            local = entries[rows] - space.first
            similarity_of = EmbeddingSimilarity(space.weight, similarity, space.gram)
            out[rows] = pair_similarities(similarity_of, target[rows] - space.first, local)
        return out

    def embedding_rows(self, ids):
        """e_w for ``ids`` (fp32, no gradient)."""
        return embedding_rows(self.parts, ids)
