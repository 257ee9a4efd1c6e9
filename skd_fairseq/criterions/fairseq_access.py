"""What the criteria take from fairseq: the output embedding, the excluded symbols, the update count,
the epoch boundaries, an encoder-decoder run in pieces, and the weights of an adaptive softmax."""

import functools
import re
from typing import List

import torch
from torch import nn

from ..adaptive import AdaptiveParts

# fairseq's Dictionary.pad_to_multiple_ fills the vocabulary with these; they never occur in data.
_FILLER_SYMBOL = re.compile(r"madeupword\d{4}")


def excluded_token_ids(dictionary) -> List[int]:
    """Ids never used as SKD candidates: bos, pad, eos, unk, the dictionary's extra
    special symbols (the first ``nspecial`` ids) and fairseq's vocabulary filler."""
    ids = set(range(dictionary.nspecial))
    ids.update((dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk()))
    ids.update(i for i, s in enumerate(dictionary.symbols) if _FILLER_SYMBOL.fullmatch(s))
    return sorted(ids)


def output_embedding(model, vocab_size: int) -> torch.Tensor:
    """The decoder's output projection weight E [V, D] (tied or not)."""
    decoder = model.decoder
    if getattr(decoder, "adaptive_softmax", None) is not None:
        raise ValueError(
            "SKD needs the full output embedding, but this model uses an adaptive softmax "
            "(--adaptive-softmax-cutoff). Train it without the adaptive softmax (leave "
            "--adaptive-softmax-cutoff unset) to use SKD, or keep it with --criterion adaptive_loss "
            "and no SKD."
        )
    weight = None
    projection = getattr(decoder, "output_projection", None)
    if isinstance(projection, nn.Linear):
        weight = projection.weight
    elif getattr(decoder, "share_input_output_embed", False):
        weight = decoder.embed_tokens.weight
    elif isinstance(getattr(decoder, "fc_out", None), nn.Linear):  # fairseq's LSTM decoder
        weight = decoder.fc_out.weight
    if weight is None:
        raise ValueError(
            f"SKD needs an output projection over the vocabulary, but {type(decoder).__name__} "
            "has none that skd_fairseq recognises (decoder.output_projection, a shared "
            "decoder.embed_tokens, or decoder.fc_out). Use a fairseq transformer/transformer_lm/lstm "
            "decoder."
        )
    if weight.dim() != 2 or weight.size(0) != vocab_size:
        raise ValueError(
            f"the decoder's output projection has shape {tuple(weight.shape)}, but the target "
            f"dictionary has {vocab_size} symbols: SKD needs one output embedding row per symbol"
        )
    return weight


def relay_num_updates(task) -> None:
    """Make ``task.train_step`` tell the criterion the trainer's update count.

    fairseq passes ``update_num`` (updates already applied: the true count under
    --update-freq and after resuming) to ``task.train_step``, which hands it to the
    model only. Wrapping the task's method once forwards it to any criterion that
    has ``set_num_updates``, before the criterion runs.
    """
    train_step = task.train_step
    if getattr(train_step, "relays_num_updates", False):
        return

    @functools.wraps(train_step)
    def relaying_train_step(sample, model, criterion, optimizer, update_num, **kwargs):
        if hasattr(criterion, "set_num_updates"):
            criterion.set_num_updates(update_num)
        return train_step(sample, model, criterion, optimizer, update_num, **kwargs)

    relaying_train_step.relays_num_updates = True
    task.train_step = relaying_train_step


def relay_begin_epoch(task, criterion) -> None:
    """Make ``task.begin_epoch(epoch, model)`` (fairseq's hook before each training epoch, given
    the unwrapped model) call ``criterion.begin_epoch(epoch, model)`` first. The task holds the
    latest criterion built for it."""
    begin_epoch = task.begin_epoch
    if getattr(begin_epoch, "relays_to", None) is not None:
        begin_epoch.relays_to[0] = criterion
        return
    relays_to = [criterion]

    @functools.wraps(begin_epoch)
    def relaying_begin_epoch(epoch, model):
        relays_to[0].begin_epoch(epoch, model)
        return begin_epoch(epoch, model)

    relaying_begin_epoch.relays_to = relays_to
    task.begin_epoch = relaying_begin_epoch


def unwrapped(model):
    """The fairseq model inside the wrappers distributed training puts around it (sometimes two)."""
    while hasattr(model, "module"):
        model = model.module
    return model


def relay_task_state(task, key: str, state) -> None:
    """Make ``task.state_dict()``, which fairseq-train saves in every checkpoint ("task_state"),
    hold ``state()`` under ``key`` too (the latest ``state`` relayed for that key wins)."""
    state_dict = task.state_dict
    relays = getattr(state_dict, "relays", None)
    if relays is None:
        relays = {}

        @functools.wraps(state_dict)
        def state_dict_with_relays():
            return dict(state_dict(), **{name: provide() for name, provide in relays.items()})

        state_dict_with_relays.relays = relays
        task.state_dict = state_dict_with_relays
    relays[key] = state


def encode_source(model, net_input):
    """The encoder output of a fairseq encoder-decoder ``model`` for ``net_input``, as its
    ``forward`` computes it before decoding (kept to decode several prefixes of one source)."""
    return model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])


def decode_prefix(decoder, prev_output_tokens, encoder_out, net_input):
    """The decoder output for ``prev_output_tokens`` given an :func:`encode_source` output."""
    return decoder(prev_output_tokens, encoder_out=encoder_out, src_lengths=net_input["src_lengths"])


def _plain_module(module, what):
    """``module`` itself, refusing quantisation noise (its hooks change the weights in forward)."""
    if getattr(module, "_forward_pre_hooks", None):
        raise ValueError(
            f"the adaptive softmax's {what} has forward hooks (quantisation noise, --quant-noise-pq > 0): "
            "SKD reads the weights directly and would not see the noise; train without --quant-noise-pq"
        )
    return module


def _tail_projection(proj) -> torch.Tensor:
    """P_i [d_i, D] of a tail's first module: z = P_i h."""
    proj = _plain_module(proj, "tail projection")
    if isinstance(proj, nn.Linear):
        return proj.weight
    if getattr(proj, "transpose", None) is True:  # TiedLinear(adaptive input projection, transpose=True): z = h @ W
        return proj.weight.t()
    raise ValueError(f"unrecognised adaptive-softmax tail projection {type(proj).__name__}")


def _tail_output(out) -> torch.Tensor:
    """W_i [cluster size, d_i] of a tail's last module."""
    out = _plain_module(out, "tail output")
    if isinstance(out, nn.Linear) or getattr(out, "transpose", None) is False:
        return out.weight
    raise ValueError(f"unrecognised adaptive-softmax tail output {type(out).__name__}")


def adaptive_parts(adaptive_softmax) -> AdaptiveParts:
    """The weights of fairseq's ``AdaptiveSoftmax`` in :class:`AdaptiveParts`' convention.

    Head: an ``nn.Linear`` over [head words, cluster logits], or the ``TiedHeadModule`` of
    ``--tie-adaptive-weights`` (the adaptive input's first band, after an optional
    projection Q: e_w = Q^T emb_0[w], folded here). Tails: Sequential(projection, dropout,
    output), the projection an ``nn.Linear`` or the adaptive input's projection used
    transposed (``--tie-adaptive-proj``), the output an ``nn.Linear`` or the input band's
    embedding.
    """
    cutoff = list(adaptive_softmax.cutoff)
    head = _plain_module(adaptive_softmax.head, "head")
    if isinstance(head, nn.Linear):
        head_words = head.weight[: cutoff[0]]
    elif hasattr(head, "word_proj"):  # TiedHeadModule
        word_proj = head.word_proj
        if isinstance(word_proj, nn.Sequential):  # Linear(D -> emb dim), then the tied embedding
            q, tied = _plain_module(word_proj[0], "head projection"), word_proj[1]
            head_words = tied.weight.detach() @ q.weight.detach()
        else:
            head_words = word_proj.weight
    else:
        raise ValueError(f"unrecognised adaptive-softmax head {type(head).__name__}")
    tail_out, tail_proj = [], []
    for tail in adaptive_softmax.tail:
        # AdaptiveScores applies tail[1] itself, with one mask per position for the whole step.
        if len(tail) != 3 or not isinstance(tail[1], nn.Dropout):
            raise ValueError(
                "unrecognised adaptive-softmax tail: expected fairseq's Sequential(projection, "
                f"Dropout, output), found {tail}"
            )
        tail_proj.append(_tail_projection(tail[0]))
        tail_out.append(_tail_output(tail[-1]))
    return AdaptiveParts(cutoff, head_words.detach(), tail_out, [p.detach() for p in tail_proj])
