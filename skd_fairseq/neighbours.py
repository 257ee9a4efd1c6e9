"""Candidate tokens for the SKD soft target. No fairseq imports here.

* :func:`embedding_topk`: the k nearest rows of the output embedding matrix
  (``--skd-candidates neighbours``), chunked so memory stays O(chunk x V).
* :func:`predicted_topk`: the k tokens the model ranks highest
  (``--skd-candidates predicted``), without copying the [N, V] log-probabilities.
* :func:`random_candidates`: k tokens drawn uniformly (``--skd-candidates random``,
  the control that tells neighbours from any extra smoothing).
"""

from typing import Iterable, List, Optional, Sequence, Union

import torch

from .similarity import EmbeddingSimilarity

# Default block of a chunked [rows, V] pass (neighbour search, masked predicted top-k):
# at most this many values at once (128 MiB in fp32).
DEFAULT_BLOCK_ELEMENTS = 1 << 25

IdsLike = Union[torch.Tensor, Iterable[int]]


def _as_ids(ids: IdsLike, device: torch.device) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        ids = torch.as_tensor(list(ids), dtype=torch.long)
    return ids.to(device).reshape(-1)


def is_mask(exclude) -> bool:
    """Whether ``exclude`` is a boolean mask [V] (True: never a candidate) rather than ids."""
    return isinstance(exclude, torch.Tensor) and exclude.dtype == torch.bool


def skip_mask(exclude: Optional[IdsLike], vocab_size: int, device: torch.device) -> torch.Tensor:
    """A boolean mask [V] of the ids never returned, from ids or a mask (taken as it is)."""
    if is_mask(exclude):
        return exclude.to(device)
    skip = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    if exclude is not None:
        skip[_as_ids(exclude, device)] = True
    return skip


def excluded_count(exclude: Optional[IdsLike], vocab_size: int) -> int:
    """How many distinct valid ids ``exclude`` holds, counted without a device sync.

    A tensor is taken to hold distinct ids (its numel), as the criterion builds it (on any
    device, so the CPU runs the GPU's code path); anything else is deduplicated on the host.
    """
    if exclude is None:
        return 0
    if isinstance(exclude, torch.Tensor):
        return exclude.numel()
    ids = _as_ids(exclude, torch.device("cpu"))
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"exclude holds ids outside the vocabulary [0, {vocab_size})")
    return int(torch.unique(ids).numel())


def check_k(k: int, vocab_size: int, n_excluded: int) -> None:
    """k must leave room for the query itself and the excluded ids."""
    limit = vocab_size - n_excluded - 1
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k > limit:
        raise ValueError(
            f"k={k!r} is out of range: it must be an integer in [1, {limit}] for a "
            f"vocabulary of {vocab_size} with {n_excluded} excluded ids (and the query itself)"
        )


def _block_rows(chunk_size: Optional[int], vocab_size: int) -> int:
    """Rows per block of a chunked [rows, V] pass: ``chunk_size``, or as many as fit in
    ``DEFAULT_BLOCK_ELEMENTS`` values."""
    if chunk_size is None:
        return max(1, DEFAULT_BLOCK_ELEMENTS // vocab_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return chunk_size


# Columns per group of :func:`_grouped_topk`'s first pass.
_TOPK_GROUP = 64


def _grouped_topk(scores: torch.Tensor, k: int, group: int = _TOPK_GROUP) -> torch.LongTensor:
    """Column ids of the ``k`` largest values of each row of ``scores`` [rows, V], exactly, in two
    passes: the maximum of each group of ``group`` columns, then the top k among the columns of the
    k groups with the largest maxima (and the columns past the last whole group). The k largest
    values lie there: each lies in a group whose maximum is at least the k-th largest value, and
    at most k groups have one. A full top-k over V costs several times the one maximum per
    element that this takes (CPU: about 3 ns against 0.8 per element); ties may be broken
    otherwise than ``topk`` breaks them."""
    rows, width = scores.shape
    whole = width // group * group
    if whole < group * 4 * k:  # too few groups to gain anything
        return scores.topk(k, dim=1).indices
    step_row, step_col = scores.stride()
    maxima = scores.as_strided((rows, whole // group, group), (step_row, group * step_col, step_col)).amax(-1)
    groups = maxima.topk(k, dim=1).indices
    columns = (groups.unsqueeze(-1) * group + torch.arange(group, device=scores.device)).reshape(rows, k * group)
    if whole < width:
        columns = torch.cat([columns, torch.arange(whole, width, device=scores.device).expand(rows, -1)], 1)
    best = scores.gather(1, columns).topk(k, dim=1).indices
    return columns.gather(1, best)


def _topk_skipping(
    scores: torch.Tensor, excluded: Optional[torch.Tensor], own: torch.Tensor, k: int
) -> torch.LongTensor:
    """Top ``k`` column ids of each row of a block ``scores`` (overwritten), never an
    ``excluded`` id (None: none) nor the row's ``own`` id."""
    # Only the excluded columns are written (no pass over the whole block).
    if excluded is not None:
        scores.index_fill_(1, excluded, float("-inf"))
    scores.scatter_(1, own.unsqueeze(1), float("-inf"))
    return _grouped_topk(scores, k)


def embedding_topk(
    embeddings: torch.Tensor,
    ids: IdsLike,
    k: int,
    similarity: str = "cosine",
    exclude: Optional[IdsLike] = None,
    chunk_size: Optional[int] = None,
    gram: Optional[torch.Tensor] = None,
) -> torch.LongTensor:
    """The ``k`` rows of ``embeddings`` most similar to each row in ``ids``.

    Args:
        embeddings: [V, D] matrix (any float dtype; similarities are fp32); with ``gram``,
            coordinates in a projection's span (see :class:`EmbeddingSimilarity`).
        ids: the queried row ids.
        k: neighbours per query.
        similarity: ``cosine``, ``l2`` or ``dot`` (see :mod:`skd_fairseq.similarity`).
        exclude: ids never returned (e.g. special symbols).
        chunk_size: queries per block; the block's [chunk_size, V] similarity matrix
            bounds the extra memory. Default: as many as fit in 2^25 fp32 values.
        gram: G = P P^T [d, d] when the rows are coordinates w of embeddings P^T w.

    Returns:
        LongTensor [len(ids), k] on the embeddings' device, most similar first,
        never the query itself nor an excluded id.
    """
    vocab_size = embeddings.size(0)
    device = embeddings.device
    check_k(k, vocab_size, excluded_count(exclude, vocab_size))
    chunk_size = _block_rows(chunk_size, vocab_size)

    ids = _as_ids(ids, device)
    excluded = _as_ids(exclude if exclude is not None else [], device)
    with torch.no_grad():
        similarity_of = EmbeddingSimilarity(embeddings, similarity, gram)
        out = torch.empty(ids.numel(), k, dtype=torch.long, device=device)
        # One block buffer for every chunk: a fresh [chunk, V] block per chunk costs fresh pages
        # (page faults on a CPU) and, freed late, twice the memory.
        block = torch.empty(min(chunk_size, ids.numel()), vocab_size, dtype=torch.float32, device=device)
        for start in range(0, ids.numel(), chunk_size):
            query = ids[start : start + chunk_size]
            sims = similarity_of.against_all(query, out=block[: query.numel()])
            out[start : start + chunk_size] = _topk_skipping(sims, excluded, query, k)
    return out


def rows_of_rank(n: int, rank: int, world: int):
    """(start, end) of rank's share of n rows: contiguous, sizes differing by at most one."""
    return rank * n // world, (rank + 1) * n // world


def gather_row_blocks(blocks: Sequence[torch.Tensor], sizes: Sequence[int], world: int) -> List[torch.Tensor]:
    """Assemble tables split across distributed ranks with one all-gather.

    Rank r holds, for each table c, its rows :func:`rows_of_rank` (sizes[c], r, world) as
    ``blocks[c]``; every rank gets every table whole. Each block travels padded to its
    largest share, so all ranks send tensors of one shape.
    """
    longest = [-(-size // world) for size in sizes]
    width = blocks[0].size(1)
    packed = torch.cat(
        [torch.cat([block, block.new_zeros(length - block.size(0), width)]) for block, length in zip(blocks, longest)]
    )
    gathered = [torch.empty_like(packed) for _ in range(world)]
    torch.distributed.all_gather(gathered, packed)
    tables, offset = [], 0
    for size, length in zip(sizes, longest):
        pieces = []
        for rank in range(world):
            start, end = rows_of_rank(size, rank, world)
            pieces.append(gathered[rank][offset : offset + end - start])
        tables.append(torch.cat(pieces))
        offset += length
    return tables


class Space:
    """Rows of the vocabulary searched together: ids first .. first + rows - 1, their
    embeddings ``weight`` [rows, d] (coordinates, with ``gram``: see
    :class:`EmbeddingSimilarity`) and a name for messages."""

    def __init__(
        self, weight: torch.Tensor, first: int = 0, gram: Optional[torch.Tensor] = None, name: str = "vocabulary"
    ):
        self.weight, self.first, self.gram, self.name = weight, first, gram, name

    @property
    def rows(self) -> int:
        return self.weight.size(0)


def excluded_per_space(
    spaces: Sequence[Space], starts: torch.Tensor, exclude: Optional[torch.Tensor]
) -> List[torch.Tensor]:
    """Each space's excluded ids, as ids local to it, from one sync (``starts``: the spaces' first
    ids, on the device; ``exclude``: sorted global ids, or None for none)."""
    excluded = exclude if exclude is not None else torch.zeros(0, dtype=torch.long, device=starts.device)
    end = starts.new_tensor([spaces[-1].first + spaces[-1].rows])
    bounds = torch.searchsorted(excluded, torch.cat([starts, end])).tolist()
    return [excluded[bounds[c] : bounds[c + 1]] - space.first for c, space in enumerate(spaces)]


def _check_k_per_space(spaces: Sequence[Space], k: int, local_excluded: Sequence[torch.Tensor]) -> None:
    """k must fit every space; the message names the space that it does not fit."""
    for space, local in zip(spaces, local_excluded):
        try:
            check_k(k, space.rows, local.numel())
        except ValueError as err:
            raise ValueError(f"{space.name} ({space.rows} words): {err}") from None


def _space_topk(
    space: Space, query: torch.Tensor, k: int, similarity: str, local_excluded: torch.Tensor
) -> torch.LongTensor:
    """Global ids of the ``k`` nearest neighbours within ``space`` of its rows ``query`` (local ids)."""
    return embedding_topk(space.weight, query, k, similarity, local_excluded, gram=space.gram) + space.first


def _gathered_table(
    spaces: Sequence[Space], local_excluded: Sequence[torch.Tensor], k: int, similarity: str, world: int, rank: int
) -> torch.LongTensor:
    """The whole table: this rank searches its share of each space's rows, one all-gather the rest."""
    device = spaces[0].weight.device
    blocks = []
    for space, local in zip(spaces, local_excluded):
        start, end = rows_of_rank(space.rows, rank, world)
        query = torch.arange(start, end, device=device)
        blocks.append(
            _space_topk(space, query, k, similarity, local)
            if end > start
            else torch.zeros(0, k, dtype=torch.long, device=device)
        )
    return torch.cat(gather_row_blocks(blocks, [space.rows for space in spaces], world))


def _table_of_ids(
    spaces: Sequence[Space],
    starts: torch.Tensor,
    local_excluded: Sequence[torch.Tensor],
    ids: torch.Tensor,
    k: int,
    similarity: str,
) -> torch.LongTensor:
    """The neighbours of ``ids`` (global, in any order), each id searched within its own space."""
    # The queried ids, grouped by space (one sync for the group sizes).
    space_of = torch.bucketize(ids, starts, right=True) - 1
    order = torch.argsort(space_of, stable=True)
    counts = torch.bincount(space_of, minlength=len(spaces)).tolist()
    out = torch.empty(ids.numel(), k, dtype=torch.long, device=starts.device)
    offset = 0
    for space, local, count in zip(spaces, local_excluded, counts):
        if count:
            rows = order[offset : offset + count]
            out[rows] = _space_topk(space, ids[rows] - space.first, k, similarity, local)
        offset += count
    return out


def neighbour_table(
    spaces: Sequence[Space],
    k: int,
    similarity: str,
    exclude: Optional[torch.Tensor] = None,
    ids: Optional[torch.Tensor] = None,
    world: int = 1,
    rank: int = 0,
) -> torch.LongTensor:
    """The ``k`` nearest neighbours of every id (or of ``ids``), each within its own space.

    The spaces cover the vocabulary in order (one space: the whole vocabulary; an adaptive
    softmax: one per cluster). With ``world`` > 1 (``ids`` None) rank ``rank`` searches its
    share of each space's rows and one all-gather assembles the table on every rank.

    Args:
        exclude: sorted ids never returned (special symbols, unseen tokens), on the device.
        ids: the ids to search for (default: all), in any order.

    Returns:
        LongTensor [V, k] (or [len(ids), k]): global ids, most similar first.
    """
    device = spaces[0].weight.device
    starts = torch.tensor([space.first for space in spaces], device=device)
    local_excluded = excluded_per_space(spaces, starts, exclude)
    _check_k_per_space(spaces, k, local_excluded)
    if ids is None and world == 1:
        return torch.cat(
            [
                _space_topk(space, torch.arange(space.rows, device=device), k, similarity, local)
                for space, local in zip(spaces, local_excluded)
            ]
        )
    if ids is None:
        return _gathered_table(spaces, local_excluded, k, similarity, world, rank)
    return _table_of_ids(spaces, starts, local_excluded, ids, k, similarity)


# Above this many excluded ids, predicted_topk masks them in a copy of each row block rather
# than taking the top k + 1 + |exclude| of every row: with --skd-exclude-unseen thousands of a
# joined dictionary's source-only pieces are excluded, and that wide top-k, its isin and its sort
# made a training step three times slower (measured on the Multi30k de-en table runs).
MASK_EXCLUDED_ABOVE = 64


def predicted_topk(
    lprobs: torch.Tensor,
    target: torch.Tensor,
    k: int,
    exclude: Optional[IdsLike] = None,
    chunk_size: Optional[int] = None,
) -> torch.LongTensor:
    """The ``k`` tokens with the largest ``lprobs`` per row, skipping ``target`` and ``exclude``.

    With few excluded ids, takes the top ``k + 1 + |exclude|`` of each row (enough to
    survive every skip) and keeps the first ``k`` admissible ones, so the [N, V] scores
    are never copied. With more than ``MASK_EXCLUDED_ABOVE``, or a mask, copies
    ``chunk_size`` rows at a time (default: as many as fit in 2^25 values, as
    :func:`embedding_topk`), sets the excluded and gold scores to -inf and takes their top
    ``k``: memory O(chunk_size x V) beyond ``lprobs``.

    Args:
        lprobs: [N, V] scores (log-probabilities); not differentiated.
        target: [N] gold ids.
        exclude: ids never returned, or a boolean mask [V] of them; a mask's count is not
            read (that would sync a GPU): the caller makes sure k ids besides the target remain.
        chunk_size: rows per block on the masking path.

    Returns:
        LongTensor [N, k], highest score first.
    """
    vocab_size = lprobs.size(-1)
    mask = exclude if is_mask(exclude) else None
    n_excluded = 0 if mask is not None else excluded_count(exclude, vocab_size)
    check_k(k, vocab_size, n_excluded)
    with torch.no_grad():
        lprobs = lprobs.detach()
        if mask is not None or n_excluded > MASK_EXCLUDED_ABOVE:
            rows = _block_rows(chunk_size, vocab_size)
            excluded = None if mask is not None else _as_ids(exclude, lprobs.device)
            out = torch.empty(lprobs.size(0), k, dtype=torch.long, device=lprobs.device)
            for start in range(0, lprobs.size(0), rows):
                block = lprobs[start : start + rows].clone()
                own = target[start : start + rows]
                if mask is not None:
                    block.masked_fill_(mask, float("-inf"))
                    out[start : start + rows] = _topk_skipping(block, None, own, k)
                else:
                    out[start : start + rows] = _topk_skipping(block, excluded, own, k)
            return out
        top = lprobs.topk(k + 1 + n_excluded, dim=-1).indices
        skip = top.eq(target.unsqueeze(-1))
        if exclude is not None:
            skip |= torch.isin(top, _as_ids(exclude, top.device))
        # A stable sort on the skip flag moves admissible ids first, keeping their order.
        order = skip.to(torch.uint8).sort(dim=-1, stable=True).indices[..., :k]
        return top.gather(-1, order)


def admissible_ids(vocab_size: int, exclude: Optional[IdsLike], device=None) -> torch.LongTensor:
    """The sorted ids a candidate may take: the vocabulary without ``exclude``."""
    keep = torch.ones(vocab_size, dtype=torch.bool)
    if exclude is not None:
        keep[_as_ids(exclude, torch.device("cpu"))] = False
    return keep.nonzero().squeeze(1).to(device)


def random_candidates(
    target: torch.Tensor,
    k: int,
    admissible: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    pools=None,
    admissible_count: Optional[torch.Tensor] = None,
) -> torch.LongTensor:
    """``k`` distinct ids per position, drawn uniformly from ``admissible`` without the gold id.

    Robert Floyd's sampling, vectorised over positions: k draws per row, each an index
    into the row's own pool (the admissible ids, less the gold id when it is one of them),
    so there is no rejection loop and no host-device sync.

    Args:
        target: [N] gold ids.
        k: candidates per position.
        admissible: sorted [M] ids that may be drawn (:func:`admissible_ids`), on target's device.
        generator: random source on target's device (reproducible draws).
        pools: optional (lo, hi) [N]: each row draws from ``admissible[lo:hi]`` only (the gold
            id's cluster of an adaptive softmax), which must hold the gold id's position and
            at least k other ids (not checked here: that would sync).
        admissible_count: optional device scalar: only the first ``admissible_count`` entries
            of ``admissible`` are ids, the rest padding >= V (a set whose size only the device
            knows, :meth:`SeenTargets.admissible`); the default pool is then those entries.

    Returns:
        LongTensor [N, k] in no particular order.
    """
    m = admissible.numel()
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= m - 1:
        raise ValueError(f"k={k!r} is out of range: it must be an integer in [1, {m - 1}] for {m} admissible ids")
    n = target.numel()
    if pools is not None:
        lo, hi = pools
    else:
        lo = torch.zeros_like(target)
        hi = torch.full_like(target, m) if admissible_count is None else admissible_count.expand_as(target)
    # Where the gold id sits among the admissible ids, and whether it is one of them.
    gold_pos = torch.searchsorted(admissible, target).clamp_max_(m - 1)
    gold_admissible = admissible[gold_pos].eq(target)
    pool = hi - lo - gold_admissible.long()  # [N] ids each row draws from
    chosen = torch.empty(n, k, dtype=torch.long, device=target.device)
    for i in range(k):
        # Floyd: j runs over pool-k .. pool-1; draw t in [0, j]; if t was taken, take j.
        j = pool - k + i
        u = torch.rand(n, generator=generator, device=target.device)
        t = torch.minimum((u * (j + 1).to(u.dtype)).long(), j)
        taken = chosen[:, :i].eq(t.unsqueeze(1)).any(1)
        chosen[:, i] = torch.where(taken, j, t)
    chosen += lo.unsqueeze(1)
    # Skip over the gold id's slot: index x >= gold_pos moves one up when the gold id is admissible.
    chosen += (chosen >= gold_pos.unsqueeze(1)) & gold_admissible.unsqueeze(1)
    return admissible[chosen]
