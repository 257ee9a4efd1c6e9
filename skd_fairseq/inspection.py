"""``skd-fairseq-inspect``: what SKD would teach from a checkpoint's output embeddings.

  skd-fairseq-inspect CHECKPOINT [--dict DICT.txt] [--words W ...] [--topk 8]
                      [--similarity cosine] [--temperature TAU | --gold-mass RHO]
                      [--taus 0.1 0.2 0.3 0.5 1.0] [--gold-masses 0.6 0.75 0.9] [--plot FILE.png]

For the chosen words: their k nearest neighbours in the output embedding space and the
soft target q over [word, neighbours] at a temperature or a gold mass (as
``--skd-candidates neighbours`` builds it). For the whole vocabulary: the mean mass q
puts on the gold token at each tau, weighted by each word's count in the dictionary
(its frequency in the training data), and the mean tau that each gold mass solves to;
``--plot`` draws q_gold against tau. Special symbols and fairseq's filler are left out,
as in training. Use it to choose ``--skd-temperature`` or ``--skd-gold-mass`` by looking.
"""

import argparse
import os
import sys
from typing import List, Optional, Sequence

import torch

from .losses import gold_mass_soft_targets
from .neighbours import embedding_topk
from .similarity import SIMILARITIES, EmbeddingSimilarity

DEFAULT_TAUS = (0.1, 0.2, 0.3, 0.5, 1.0)
DEFAULT_GOLD_MASSES = (0.6, 0.75, 0.9)
# Tried in order when a checkpoint's output embedding is looked up.
_OUTPUT_EMBEDDING_KEYS = (
    "decoder.output_projection.weight",
    "decoder.fc_out.weight",
    "decoder.embed_tokens.weight",
)


def neighbour_similarities(embeddings, k, similarity, exclude):
    """(neighbours [V, k], similarities [V, k+1] of each word with itself and its neighbours)."""
    ids = torch.arange(embeddings.size(0))
    neighbours = embedding_topk(embeddings, ids, k, similarity, exclude=exclude)
    sims = EmbeddingSimilarity(embeddings, similarity).pairs(ids, torch.cat([ids.unsqueeze(1), neighbours], 1))
    return neighbours, sims


def mean_gold_q(similarities, weights, taus: Sequence[float]) -> List[float]:
    """Weighted mean of q_gold = softmax(s / tau)[0] over the rows, for each tau."""
    weights = weights.double() / weights.double().sum()
    return [float((torch.softmax(similarities / tau, -1)[:, 0].double() * weights).sum()) for tau in taus]


def mean_solved_tau(similarities, weights, gold_masses: Sequence[float]) -> List[float]:
    """Weighted mean of the tau that gives each gold mass (rows where it cannot be reached left out)."""
    out = []
    for rho in gold_masses:
        _, tau = gold_mass_soft_targets(similarities, rho)
        solved = tau > 0
        w = weights.double() * solved
        out.append(float((tau.double() * w).sum() / w.sum()) if w.sum() > 0 else float("nan"))
    return out


def load_checkpoint_embedding(path):
    """(output embedding [V, D] fp32, checkpoint config or None) of a fairseq checkpoint."""
    from .checkpoints import allow_fairseq_checkpoints

    allow_fairseq_checkpoints()
    state = torch.load(path, map_location="cpu")
    model = state.get("model", {})
    for key in _OUTPUT_EMBEDDING_KEYS:
        if key in model and model[key].dim() == 2:
            return model[key].float(), state.get("cfg")
    if any(key.startswith("decoder.adaptive_softmax") for key in model):
        raise SystemExit(f"skd-fairseq-inspect: {path} has an adaptive softmax: it has no single output "
                         "embedding matrix to inspect")
    raise SystemExit(f"skd-fairseq-inspect: {path} holds none of {', '.join(_OUTPUT_EMBEDDING_KEYS)}; "
                     "is it a fairseq transformer, transformer_lm or lstm checkpoint?")


def dictionary_path(cfg, checkpoint) -> Optional[str]:
    """The target dictionary the checkpoint was trained with, from its task config."""
    task = (cfg or {}).get("task") or {}
    data = task.get("data")
    if not data:
        return None
    first = str(data).split(os.pathsep)[0]
    name = f"dict.{task['target_lang']}.txt" if task.get("target_lang") else "dict.txt"
    return os.path.join(first, name)


def resolve_words(dictionary, words):
    """Dictionary ids of ``words``: a word is looked up as a sentencepiece word start ("\u2581word")
    first, then as given (so "man" finds the word, not the piece inside "woman")."""
    ids = []
    for word in words:
        for form in ("\u2581" + word, word):
            index = dictionary.index(form)
            if index != dictionary.unk() or form == dictionary.unk_word:
                ids.append(index)
                break
        else:
            close = [s for s in dictionary.symbols if word.lower() in s.lower()][:8]
            raise SystemExit(f"skd-fairseq-inspect: '{word}' is not in the dictionary"
                             + (f" (symbols containing it: {' '.join(close)})" if close else ""))
    return ids


def print_row_table(title, key, keys, name, values):
    """A two-row Markdown table: the settings, then the values measured at each."""
    print(f"\n{title}\n")
    print(f"| {key} | " + " | ".join(f"{k:g}" for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


def plot(path, taus, gold_q, label):
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's logging set-up lets its debug through
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(taus, gold_q, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("temperature tau")
    ax.set_ylabel("mean q_gold (frequency-weighted)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skd-fairseq-inspect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--dict", help="the target dictionary (default: the one in the checkpoint's data directory)")
    parser.add_argument("--words", nargs="*", default=[], help="words (dictionary symbols) to show neighbours of")
    parser.add_argument("--topk", type=int, default=8, help="k neighbours (default 8, as --skd-topk)")
    parser.add_argument("--similarity", choices=SIMILARITIES, default="cosine")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--temperature", type=float, help="tau of the neighbour listing (default 1)")
    group.add_argument("--gold-mass", type=float, help="rho of the neighbour listing, instead of a tau")
    parser.add_argument("--taus", type=float, nargs="+", default=list(DEFAULT_TAUS))
    parser.add_argument("--gold-masses", type=float, nargs="*", default=list(DEFAULT_GOLD_MASSES))
    parser.add_argument("--plot", help="draw the vocabulary-mean q_gold against tau into this PNG")
    args = parser.parse_args(argv)

    from fairseq.data import Dictionary

    from .criterions.fairseq_access import excluded_token_ids
    from .losses import check_gold_mass, skd_soft_targets

    if not os.path.exists(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint} not found")
    if any(t <= 0 for t in args.taus) or (args.temperature is not None and args.temperature <= 0):
        parser.error("temperatures must be > 0")
    embeddings, cfg = load_checkpoint_embedding(args.checkpoint)
    dict_path = args.dict or dictionary_path(cfg, args.checkpoint)
    if not dict_path or not os.path.exists(dict_path):
        parser.error(f"no dictionary found (looked for {dict_path}); give --dict DICT.txt, the target "
                     "dictionary the checkpoint was trained with")
    dictionary = Dictionary.load(dict_path)
    if len(dictionary) != embeddings.size(0):
        parser.error(f"{dict_path} has {len(dictionary)} symbols but the checkpoint's output embedding has "
                     f"{embeddings.size(0)} rows: give the dictionary the checkpoint was trained with (--dict)")
    if args.similarity == "dot" and (args.gold_mass is not None or args.gold_masses):
        parser.error("gold masses need --similarity cosine or l2 (give --gold-masses with no value to skip them)")
    for rho in args.gold_masses + ([args.gold_mass] if args.gold_mass is not None else []):
        try:
            check_gold_mass(rho, args.topk)
        except ValueError as err:
            parser.error(str(err))

    excluded = excluded_token_ids(dictionary)
    neighbours, sims = neighbour_similarities(embeddings, args.topk, args.similarity, excluded)
    keep = torch.ones(len(dictionary), dtype=torch.bool)
    keep[excluded] = False
    weights = torch.tensor(dictionary.count, dtype=torch.float64) * keep
    if weights.sum() == 0:
        parser.error(f"{dict_path} has no counts: the frequency weights need fairseq-preprocess's dict.txt")
    gold_q = mean_gold_q(sims, weights, args.taus)

    print(f"{args.checkpoint}: V = {len(dictionary)}, D = {embeddings.size(1)}, k = {args.topk}, "
          f"{args.similarity}; {len(excluded)} special/filler ids left out; weights: counts in {dict_path}")
    print_row_table("Mass q puts on the gold token (mean over the vocabulary, weighted by frequency):",
                    "tau", args.taus, "q_gold", gold_q)
    if args.gold_masses:
        print_row_table("Temperature each gold mass solves to (mean over the vocabulary, weighted by frequency):",
                        "rho", args.gold_masses, "tau", mean_solved_tau(sims, weights, args.gold_masses))
    if args.words:
        ids = torch.tensor(resolve_words(dictionary, args.words))
        setting = (f"rho {args.gold_mass:g}" if args.gold_mass is not None
                   else f"tau {args.temperature if args.temperature is not None else 1.0:g}")
        q, tau = skd_soft_targets(embeddings, ids, neighbours[ids], args.similarity,
                                  temperature=None if args.gold_mass is not None else (args.temperature or 1.0),
                                  gold_mass=args.gold_mass, return_temperature=True)
        print()
        print(f"Neighbours and q at {setting} (similarity in brackets):")
        print()
        for row, word_id in enumerate(ids.tolist()):
            parts = [f"{dictionary[c]} {float(q[row, j + 1]):.3f} ({float(sims[word_id, j + 1]):.2f})"
                     for j, c in enumerate(neighbours[word_id].tolist())]
            solved = f", tau {float(tau[row]):.3f}" if args.gold_mass is not None else ""
            print(f"{dictionary[word_id]} (q_gold {float(q[row, 0]):.3f}{solved}): " + ", ".join(parts))
    if args.plot:
        run_name = os.path.join(*os.path.abspath(args.checkpoint).split(os.sep)[-3:-1])
        plot(args.plot, args.taus, gold_q, run_name)
        print(f"\nplot: {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
