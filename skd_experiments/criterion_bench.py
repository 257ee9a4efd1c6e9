"""bench_criterion's stand-ins (benchmarks/bench_criterion.py): a model that is only an output layer
(a linear projection, or transformer_lm_wiki103's adaptive softmax), the criteria it compares and
their variants."""

import torch
from torch import nn


def build_dictionary(vocab_size):
    from fairseq.data import Dictionary

    d = Dictionary()
    for i in range(vocab_size - d.nspecial):
        d.add_symbol(f"w{i}")
    return d


class StandInTask:
    def __init__(self, dictionary):
        self.target_dictionary = dictionary
        self.source_dictionary = dictionary

    def train_step(self, *args, **kwargs):  # relay_num_updates wraps this; never called here
        raise NotImplementedError


class OutputLayerModel(nn.Module):
    """The decoder's last step only: hidden states -> logits over the vocabulary."""

    def __init__(self, vocab_size, dim):
        super().__init__()
        self.decoder = nn.Module()
        self.decoder.output_projection = nn.Linear(dim, vocab_size, bias=False)
        self.decoder.adaptive_softmax = None

    def forward(self, hidden):
        return self.decoder.output_projection(hidden), None

    def get_normalized_probs(self, net_output, log_probs):
        logits = net_output[0].float()  # as fairseq's decoders: log-softmax in fp32
        return torch.log_softmax(logits, dim=-1) if log_probs else torch.softmax(logits, dim=-1)

    def get_targets(self, sample, net_output):
        return sample["target"]


class AdaptiveOutputModel(nn.Module):
    """transformer_lm_wiki103's output layer only: hidden states -> fairseq's AdaptiveSoftmax,
    tied to an AdaptiveInput (factor 4) with tied projections."""

    def __init__(self, vocab_size, dim, cutoff):
        super().__init__()
        from fairseq.modules import AdaptiveInput, AdaptiveSoftmax

        self.decoder = nn.Module()
        self.decoder.embed_tokens = AdaptiveInput(vocab_size, 1, dim, 4.0, dim, cutoff)
        self.decoder.adaptive_softmax = AdaptiveSoftmax(
            vocab_size, dim, cutoff, dropout=0.0, factor=4.0, adaptive_inputs=self.decoder.embed_tokens, tie_proj=True
        )

    def forward(self, hidden):
        return hidden, None

    def get_targets(self, sample, net_output):
        return sample["target"]


def build_criterion(name, task, **skd):
    from fairseq.criterions.label_smoothed_cross_entropy import (
        LabelSmoothedCrossEntropyCriterion,
    )

    from skd_fairseq.criterions.label_smoothed_skd import (
        LabelSmoothedSkdCriterion,
        LabelSmoothedSkdCriterionConfig,
    )

    if name == "baseline":
        return LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    if name == "adaptive_loss":
        from fairseq.criterions.adaptive_loss import AdaptiveLoss

        return AdaptiveLoss(task, False)
    smoothing = 0.0 if name == "skd-adaptive" else 0.1
    cfg = LabelSmoothedSkdCriterionConfig(
        label_smoothing=smoothing, sentence_avg=False, seed=1, ddp_backend="legacy_ddp", **skd
    )
    return LabelSmoothedSkdCriterion(task, cfg)


def criterion_variants(refresh, adaptive_candidates=()):
    if adaptive_candidates:  # R = 0 would search the whole vocabulary at every step
        yield "baseline", {}
        for mode in adaptive_candidates:  # cluster: the default, unsuffixed
            suffix, flags = ("" if mode == "cluster" else f"-{mode}"), dict(skd_adaptive_candidates=mode)
            yield (
                f"skd-neighbours-R{refresh}{suffix}",
                dict(flags, skd_candidates="neighbours", skd_neighbour_refresh=refresh),
            )
            yield f"skd-random{suffix}", dict(flags, skd_candidates="random")
            yield f"skd-predicted{suffix}", dict(flags, skd_candidates="predicted")
        return
    yield "baseline", {}
    yield "skd-neighbours-R0", dict(skd_candidates="neighbours", skd_neighbour_refresh=0)
    yield f"skd-neighbours-R{refresh}", dict(skd_candidates="neighbours", skd_neighbour_refresh=refresh)
    yield "skd-predicted", dict(skd_candidates="predicted")
