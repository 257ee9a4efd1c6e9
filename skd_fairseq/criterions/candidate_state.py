"""How ``label_smoothed_skd`` picks each position's candidates (:class:`CandidatePicker`) and
what it keeps from step to step to do so: the neighbour table and the set of tokens seen as a
training target. Neither is saved in checkpoints."""

import logging

import torch

from ..neighbours import admissible_ids, neighbour_table, random_candidates

logger = logging.getLogger(__name__)


def world_and_rank():
    if torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class NeighbourTable:
    """The k nearest neighbours of every token, rebuilt every ``refresh`` updates from the
    (replicated) weights; ``refresh`` 0 searches each batch's gold tokens at every step instead."""

    def __init__(self, k: int, similarity: str, refresh: int):
        self.k, self.similarity, self.refresh = k, similarity, refresh
        self.table = None
        self.period = None  # num_updates // refresh when the table was built

    def is_stale(self, num_updates: int, device) -> bool:
        """Whether the next :meth:`candidates` call searches (always without a cached table)."""
        if self.refresh == 0 or self.table is None or self.table.device != device:
            return True
        return num_updates // self.refresh != self.period

    def candidates(self, spaces, target, excluded, num_updates: int) -> torch.Tensor:
        """[N, k] neighbours of ``target`` [N]. ``spaces``: a callable giving the search spaces
        (read only when searching); ``excluded``: ids never returned (read only then, may be None
        otherwise)."""
        if self.refresh == 0:
            gold, rows = torch.unique(target, return_inverse=True)
            return neighbour_table(spaces(), self.k, self.similarity, excluded, ids=gold)[rows]
        if self.is_stale(num_updates, target.device):
            # With several ranks each searches its share of the rows and one all-gather
            # assembles the table (the weights are replicated, so the shares make one table).
            world, rank = world_and_rank()
            self.table = neighbour_table(spaces(), self.k, self.similarity, excluded, world=world, rank=rank)
            self.period = num_updates // self.refresh
        return self.table[target]


class SeenTargets(torch.nn.Module):
    """``--skd-exclude-unseen``: which tokens have been a training target so far (a boolean
    buffer, which moves with the criterion to the training device)."""

    def __init__(self, vocab_size: int, padding_idx: int):
        super().__init__()
        self.padding_idx = padding_idx
        self.register_buffer("seen", torch.zeros(vocab_size, dtype=torch.bool), persistent=False)
        self._resume_checked = False
        self._enough = False  # every pool has held k + 1 seen tokens: it does from then on

    def add(self, target: torch.Tensor, num_updates: int) -> None:
        """Mark ``target``'s tokens as seen (index_fill_, then clear padding: a boolean mask
        would sync)."""
        if not self._resume_checked:
            self._resume_checked = True
            if num_updates > 0:
                logger.warning(
                    f"--skd-exclude-unseen: resuming at update {num_updates}; checkpoints do not hold the "
                    "set of tokens seen as a target, so it starts empty again: until the run has passed over "
                    "the training data once more, candidates are drawn among the targets seen since this "
                    "restart (a neighbour table built from the first batches holds fewer candidates than the "
                    "uninterrupted run's)"
                )
        self.seen.index_fill_(0, target, True)
        self.seen[self.padding_idx] = False

    def enough(self, excluded_ids: torch.Tensor, seen_per_pool, needed: int) -> bool:
        """Whether every candidate pool holds ``needed`` seen tokens outside ``excluded_ids``. It
        reads the counts (one sync) only until they do: the set only grows, so from then on it
        answers without looking (random and predicted candidates' steady steps make no sync)."""
        if not self._enough:
            seen = self.seen.clone()
            seen[excluded_ids] = False
            self._enough = min(seen_per_pool(seen).tolist()) >= needed
        return self._enough

    def admissible(self, excluded_ids: torch.Tensor):
        """(skip mask [V], admissible [V], count): the tokens not yet seen or excluded as a mask,
        and the seen ones ascending followed by padding >= V, of which ``count`` (a device
        scalar) are ids. Fixed shapes, so no sync: what ``predicted_topk`` and
        ``random_candidates`` take (their ``exclude`` mask, and ``admissible`` with
        ``admissible_count``)."""
        allowed = self.seen.clone()
        allowed[excluded_ids] = False
        ids = torch.arange(allowed.numel(), device=allowed.device)
        admissible = torch.where(allowed, ids, ids + allowed.numel()).sort().values
        return ~allowed, admissible, allowed.sum()

    def split(self, excluded_ids: torch.Tensor, seen_per_pool, all_ranks: bool):
        """(excluded ids, admissible ids, seen per pool): the unseen and the seen tokens, each
        ascending, never an id of ``excluded_ids``. ``seen_per_pool`` counts a mask's tokens per
        candidate pool (one pool, or an adaptive softmax's clusters); ``all_ranks``: tokens seen on
        any rank count (an all-reduce), so that every rank builds the same neighbour table."""
        seen = self.seen.clone()
        if all_ranks and torch.distributed.is_initialized():
            seen_int = seen.to(torch.int32)
            torch.distributed.all_reduce(seen_int, op=torch.distributed.ReduceOp.MAX)
            seen = seen_int.bool()
        seen[excluded_ids] = False
        # Both id lists from one stable sort: the unseen ids, then the seen ones.
        order = torch.argsort(seen.to(torch.uint8), stable=True)
        counts = seen_per_pool(seen).tolist()  # the one sync
        n_unseen = seen.numel() - sum(counts)
        return order[:n_unseen], order[n_unseen:], counts


class CandidatePicker(torch.nn.Module):
    """The k candidates of each position by --skd-candidates (``settings.candidates``): the
    neighbour table, the model's top k, or random draws, never a special or filler symbol
    (``excluded``) nor, with --skd-exclude-unseen, a token not yet seen as a target. A module, so
    its id buffers move with the criterion to the training device."""

    def __init__(self, settings, vocab_size: int, excluded, padding_idx: int, seed: int):
        super().__init__()
        self.settings = settings
        self.register_buffer("excluded_ids", torch.tensor(excluded), persistent=False)
        self.register_buffer("admissible_ids", admissible_ids(vocab_size, excluded), persistent=False)
        self.seen_targets = SeenTargets(vocab_size, padding_idx)
        self.neighbour_table = NeighbourTable(settings.topk, settings.similarity, settings.neighbour_refresh)
        # Random candidates: a generator seeded from (seed, update, micro-batch, rank), so runs are
        # reproducible and the draws leave fairseq's own random stream (dropout) alone.
        self.seed = seed
        self._generator = None
        self._draw = (None, 0)  # (update, micro-batches drawn in it)

    def observe(self, target: torch.Tensor, num_updates: int) -> None:
        """A training step's targets (with --skd-exclude-unseen: seen from now on)."""
        if self.settings.exclude_unseen:
            self.seen_targets.add(target, num_updates)

    def exclusions(self, scores, target, num_updates: int):
        """(excluded, admissible, enough): the special and filler symbols and, with
        --skd-exclude-unseen, the tokens not yet seen as a target; ``enough`` is False while fewer
        than k + 1 tokens have been (with cluster candidates: in some cluster). ``excluded``: ids,
        or a mask [V]; ``admissible``: sorted ids, or (ids padded with >= V, their count) for
        random candidates among the seen tokens. With a cached neighbour table both are None (the
        table applies). Only a neighbour-table refresh, and the steps before every pool has k + 1
        seen tokens, read counts on the host."""
        if not self.settings.exclude_unseen:
            return self.excluded_ids, self.admissible_ids, True
        needed = self.settings.topk + 1
        if self.settings.candidates == "neighbours":
            if not self.neighbour_table.is_stale(num_updates, target.device):
                return None, None, True
            excluded, admissible, counts = self.seen_targets.split(
                self.excluded_ids, scores.seen_per_cluster, all_ranks=True
            )
            return excluded, admissible, min(counts) >= needed
        if not self.seen_targets.enough(self.excluded_ids, scores.seen_per_cluster, needed):
            return None, None, False
        skip, admissible, count = self.seen_targets.admissible(self.excluded_ids)
        return skip, (admissible, count), True

    def pick(self, scores, target: torch.Tensor, num_updates: int):
        """[N, k] candidates of each position, or None while too few tokens have been seen."""
        excluded, admissible, enough = self.exclusions(scores, target, num_updates)
        if not enough:
            return None
        mode, k = self.settings.candidates, self.settings.topk
        if mode == "predicted":
            return scores.topk(k, excluded, target)
        if mode == "random":
            generator = self.random_generator(target.device, num_updates)
            admissible, count = admissible if isinstance(admissible, tuple) else (admissible, None)
            pools = scores.random_pools(admissible, target)
            return random_candidates(target, k, admissible, generator, pools=pools, admissible_count=count)
        return self.neighbour_table.candidates(scores.neighbour_spaces, target, excluded, num_updates)

    def random_generator(self, device, num_updates: int):
        """A generator on ``device`` seeded for this micro-batch: fresh draws at every step."""
        update, drawn = self._draw
        drawn = drawn + 1 if update == num_updates else 0
        self._draw = (num_updates, drawn)
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
        rank = world_and_rank()[1]
        self._generator.manual_seed(hash((self.seed, num_updates, drawn, rank)) % 2**63)
        return self._generator
