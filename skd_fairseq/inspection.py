"""``skd-fairseq-inspect``: what SKD would teach from a checkpoint's output embeddings.

  skd-fairseq-inspect CHECKPOINT [--dict DICT.txt] [--words W ...] [--topk 8]
                      [--similarity cosine] [--temperature TAU | --gold-mass RHO]
                      [--taus 0.1 0.2 0.3 0.5 1.0] [--gold-masses 0.6 0.75 0.9] [--plot FILE.png]

For the chosen words: their k nearest neighbours in the output embedding space and the
soft target q over [word, neighbours] at a temperature or a gold mass (as
``--skd-candidates neighbours`` builds it; by default the checkpoint's own k, similarity and
temperature or gold mass). For the whole vocabulary: the mean mass q puts on the gold token at
each tau, weighted by each word's frequency as a training target, and the mean tau that each gold
mass solves to; ``--plot`` draws q_gold against tau. Special symbols and fairseq's filler are left
out, as in training. Use it to choose ``--skd-temperature`` or ``--skd-gold-mass`` by looking.

The frequencies are the target side's: counted in the binarised training targets the checkpoint
was trained on (or ``--target-data``), else the dictionary's counts where the dictionary is the
target side's own. A joined dictionary's counts also count the source side, whose pieces are
never gold: they are used only with ``--dictionary-counts``.
"""

import argparse
import os
import sys
from typing import List, Optional, Sequence

import torch

from .losses import check_gold_mass, gold_mass_soft_targets
from .neighbours import embedding_topk
from .settings import DEFAULT_GOLD_MASS
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
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as err:  # pickle, zip or weights-only errors: all say "not a checkpoint"
        # torch's weights-only message advises loading with weights_only=False: not advice to pass
        # on for a file that is no fairseq checkpoint (fairseq's own load under the plugin's
        # allow-list), so only its kind is named.
        detail = type(err).__name__
        if "weights_only" not in str(err) and str(err):
            detail += f": {str(err).splitlines()[0]}"
        raise SystemExit(
            f"skd-fairseq-inspect: cannot read {path} as a fairseq checkpoint ({detail}); give a .pt file "
            "written by fairseq-train"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise SystemExit(
            f"skd-fairseq-inspect: {path} is not a fairseq checkpoint (no 'model' entry); give a .pt "
            "file written by fairseq-train"
        )
    model = state.get("model", {})
    for key in _OUTPUT_EMBEDDING_KEYS:
        if key in model and model[key].dim() == 2:
            return model[key].float(), state.get("cfg")
    if any(key.startswith("decoder.adaptive_softmax") for key in model):
        raise SystemExit(
            f"skd-fairseq-inspect: {path} has an adaptive softmax: it has no single output embedding matrix to inspect"
        )
    raise SystemExit(
        f"skd-fairseq-inspect: {path} holds none of {', '.join(_OUTPUT_EMBEDDING_KEYS)}; "
        "is it a fairseq transformer, transformer_lm or lstm checkpoint?"
    )


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
    """(dictionary ids of the ``words`` found, a message for each one not found): a word is looked
    up as a sentencepiece word start ("\u2581word") first, then as given (so "man" finds the word,
    not the piece inside "woman")."""
    ids, missing = [], []
    for word in words:
        for form in ("\u2581" + word, word):
            index = dictionary.index(form)
            if index != dictionary.unk() or form == dictionary.unk_word:
                ids.append(index)
                break
        else:
            close = [s for s in dictionary.symbols if word.lower() in s.lower()][:8]
            missing.append(
                f"'{word}' is not in the dictionary" + (f" (symbols containing it: {' '.join(close)})" if close else "")
            )
    return ids, missing


def trained_setting(cfg):
    """(k, similarity, temperature, gold mass) the checkpoint's SKD criterion trained with (None
    where it did not use one, or set none). Checkpoints written before the default became a gold
    mass of 0.75 (their config has no skd_include_unseen) trained at tau 1 when neither was set."""
    criterion = (cfg or {}).get("criterion") or {}
    if "skd_topk" not in criterion:
        return None, None, None, None
    temperature, gold_mass = criterion.get("skd_temperature"), criterion.get("skd_gold_mass")
    if str(criterion.get("skd_weighting", "softmax")) != "softmax":
        return criterion["skd_topk"], None, None, None
    if temperature is None and gold_mass is None:
        temperature, gold_mass = (None, DEFAULT_GOLD_MASS) if "skd_include_unseen" in criterion else (1.0, None)
    return criterion["skd_topk"], str(criterion.get("skd_similarity", "cosine")), temperature, gold_mass


def default_target_data(cfg) -> Optional[str]:
    """The binarised training targets of the checkpoint's task: DATA/train.S-T.T or DATA/train."""
    task = (cfg or {}).get("task") or {}
    if not task.get("data"):
        return None
    first = str(task["data"]).split(os.pathsep)[0]
    if task.get("source_lang") and task.get("target_lang"):
        s, t = task["source_lang"], task["target_lang"]
        return os.path.join(first, f"train.{s}-{t}.{t}")
    return os.path.join(first, "train")


def target_token_counts(prefix: str, vocab_size: int) -> torch.Tensor:
    """How often each id occurs in fairseq's binarised (mmap) dataset PREFIX.bin/.idx."""
    import numpy as np
    from fairseq.data.indexed_dataset import MMapIndexedDataset

    dtype = MMapIndexedDataset.Index(prefix + ".idx").dtype
    tokens = np.memmap(prefix + ".bin", dtype=dtype, mode="r")
    counts = np.bincount(tokens, minlength=vocab_size)
    if counts.size > vocab_size:
        raise SystemExit(
            f"skd-fairseq-inspect: {prefix}.bin holds ids up to {counts.size - 1}, beyond the "
            f"dictionary's {vocab_size} symbols: give the training targets of this dictionary"
        )
    return torch.from_numpy(counts.astype("float64"))


def joined_dictionary(cfg, dictionary, dict_path) -> bool:
    """Whether the target dictionary is also the source side's (fairseq-preprocess --joined-dictionary)."""
    from fairseq.data import Dictionary

    task = (cfg or {}).get("task") or {}
    if not task.get("source_lang"):
        return False
    source_path = os.path.join(os.path.dirname(dict_path), f"dict.{task['source_lang']}.txt")
    if not os.path.exists(source_path) or os.path.abspath(source_path) == os.path.abspath(dict_path):
        return False
    source = Dictionary.load(source_path)
    return source.symbols == dictionary.symbols and source.count == dictionary.count


def frequency_weights(args, cfg, dictionary, dict_path):
    """(counts [V] float64, where they come from), the target side's (see the module's docstring)."""
    prefix = args.target_data or default_target_data(cfg)
    if prefix and os.path.exists(prefix + ".bin") and os.path.exists(prefix + ".idx"):
        return target_token_counts(prefix, len(dictionary)), f"target-side counts in {prefix}.bin"
    if args.target_data:
        raise SystemExit(
            f"skd-fairseq-inspect: --target-data {args.target_data}: no {prefix}.bin and .idx "
            "(give the prefix of fairseq-preprocess's binarised training targets)"
        )
    if joined_dictionary(cfg, dictionary, dict_path) and not args.dictionary_counts:
        raise SystemExit(
            f"skd-fairseq-inspect: {dict_path} is a joined dictionary, whose counts include source-side pieces "
            f"that are never gold, and the training targets are not at {prefix}.bin: give --target-data PREFIX "
            "(e.g. data-bin/train.de-en.en), or --dictionary-counts to weight by the joined counts anyway"
        )
    return torch.tensor(dictionary.count, dtype=torch.float64), f"counts in {dict_path}"


def print_row_table(title, key, keys, name, values):
    """A two-row Markdown table: the settings, then the values measured at each."""
    # tabulate comes with fairseq (through sacrebleu); the plugin never imports skd_experiments.
    from tabulate import tabulate

    print(f"\n{title}\n")
    header = [key] + [f"{k:g}" for k in keys]
    print(tabulate([[name] + [f"{v:.3f}" for v in values]], header, tablefmt="github", disable_numparse=True))


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


def build_parser():
    """skd-fairseq-inspect's command line."""
    parser = argparse.ArgumentParser(
        prog="skd-fairseq-inspect", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint")
    parser.add_argument("--dict", help="the target dictionary (default: the one in the checkpoint's data directory)")
    parser.add_argument("--words", nargs="*", default=[], help="words (dictionary symbols) to show neighbours of")
    parser.add_argument("--topk", type=int, help="k neighbours (default: the checkpoint's --skd-topk, else 8)")
    parser.add_argument(
        "--similarity", choices=SIMILARITIES, help="default: the checkpoint's --skd-similarity, else cosine"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--temperature",
        type=float,
        help="tau of the neighbour listing (default: the checkpoint's setting, else gold mass 0.75)",
    )
    group.add_argument("--gold-mass", type=float, help="rho of the neighbour listing, instead of a tau")
    parser.add_argument(
        "--target-data",
        help="prefix of the binarised training targets whose counts weight the "
        "vocabulary means (default: the checkpoint's DATA/train.S-T.T or DATA/train)",
    )
    parser.add_argument(
        "--dictionary-counts",
        action="store_true",
        help="weight by the dictionary's counts when the training targets are not found, also "
        "for a joined dictionary (whose counts include the source side)",
    )
    parser.add_argument("--taus", type=float, nargs="+", default=list(DEFAULT_TAUS))
    parser.add_argument(
        "--gold-masses",
        type=float,
        nargs="*",
        help=f"default {' '.join(map(str, DEFAULT_GOLD_MASSES))}, none with dot similarity",
    )
    parser.add_argument("--plot", help="draw the vocabulary-mean q_gold against tau into this PNG")
    return parser


def print_word_neighbours(args, dictionary, embeddings, word_ids, neighbours, sims):
    """Each word's neighbours with their q and similarity, at the listing's tau or rho."""
    from .losses import skd_soft_targets

    ids = torch.tensor(word_ids)
    setting = f"rho {args.gold_mass:g}" if args.gold_mass is not None else f"tau {args.temperature:g}"
    q, tau = skd_soft_targets(
        embeddings,
        ids,
        neighbours[ids],
        args.similarity,
        temperature=args.temperature,
        gold_mass=args.gold_mass,
        return_temperature=True,
    )
    print()
    print(f"Neighbours and q at {setting} (similarity in brackets):")
    print()
    for row, word_id in enumerate(ids.tolist()):
        parts = [
            f"{dictionary[c]} {float(q[row, j + 1]):.3f} ({float(sims[word_id, j + 1]):.2f})"
            for j, c in enumerate(neighbours[word_id].tolist())
        ]
        solved = f", tau {float(tau[row]):.3f}" if args.gold_mass is not None else ""
        print(f"{dictionary[word_id]} (q_gold {float(q[row, 0]):.3f}{solved}): " + ", ".join(parts))


def apply_trained_setting(args, trained):
    """Fill in the k, similarity and tau or rho the command line left out: the checkpoint's own
    (``trained``, from :func:`trained_setting`), else k 8, cosine and the default gold mass (with dot
    similarity, which a gold mass cannot use: tau 1)."""
    args.topk = args.topk if args.topk is not None else trained[0] or 8
    args.similarity = args.similarity or trained[1] or "cosine"
    if args.temperature is None and args.gold_mass is None:
        args.temperature, args.gold_mass = trained[2:] if trained[2] or trained[3] else (None, DEFAULT_GOLD_MASS)
        if args.similarity == "dot" and args.gold_mass is not None:
            args.temperature, args.gold_mass = 1.0, None  # a gold mass needs cosine or l2


def load_target_dictionary(parser, args, cfg, vocab_size):
    """(dictionary, its path): ``--dict`` or the checkpoint's, with one symbol per embedding row."""
    from fairseq.data import Dictionary

    dict_path = args.dict or dictionary_path(cfg, args.checkpoint)
    if not dict_path or not os.path.exists(dict_path):
        parser.error(
            f"no dictionary found (looked for {dict_path}); give --dict DICT.txt, the target "
            "dictionary the checkpoint was trained with"
        )
    dictionary = Dictionary.load(dict_path)
    if len(dictionary) != vocab_size:
        parser.error(
            f"{dict_path} has {len(dictionary)} symbols but the checkpoint's output embedding has "
            f"{vocab_size} rows: give the dictionary the checkpoint was trained with (--dict)"
        )
    return dictionary, dict_path


def check_gold_masses(parser, args):
    """Default ``--gold-masses`` (none with dot similarity) and check every gold mass against k."""
    if args.gold_masses is None:  # a gold mass needs cosine or l2
        args.gold_masses = [] if args.similarity == "dot" else list(DEFAULT_GOLD_MASSES)
    if args.similarity == "dot" and (args.gold_mass is not None or args.gold_masses):
        parser.error("gold masses need --similarity cosine or l2 (give --gold-masses with no value to skip them)")
    for rho in args.gold_masses + ([args.gold_mass] if args.gold_mass is not None else []):
        try:
            check_gold_mass(rho, args.topk)
        except ValueError as err:
            parser.error(str(err))


def vocabulary_weights(parser, args, cfg, dictionary, dict_path, excluded):
    """(frequency weights [V], zero on the ``excluded`` ids; where the counts come from)."""
    keep = torch.ones(len(dictionary), dtype=torch.bool)
    keep[excluded] = False
    counts, counted_in = frequency_weights(args, cfg, dictionary, dict_path)
    weights = counts * keep
    if weights.sum() == 0:
        parser.error(f"no counts in {counted_in}: the frequency weights need fairseq-preprocess's output")
    return weights, counted_in


def print_vocabulary_means(args, sims, weights, gold_q):
    """The vocabulary-mean q_gold at each tau and, for each gold mass, the mean tau it solves to."""
    print_row_table(
        "Mass q puts on the gold token (mean over the vocabulary, weighted by frequency):",
        "tau",
        args.taus,
        "q_gold",
        gold_q,
    )
    if args.gold_masses:
        print_row_table(
            "Temperature each gold mass solves to (mean over the vocabulary, weighted by frequency):",
            "rho",
            args.gold_masses,
            "tau",
            mean_solved_tau(sims, weights, args.gold_masses),
        )


def main(argv=None):
    """skd-fairseq-inspect: the settings, the vocabulary means, the words' neighbours, the plot."""
    parser = build_parser()
    args = parser.parse_args(argv)

    from .criterions.fairseq_access import excluded_token_ids

    if not os.path.exists(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint} not found")
    if any(t <= 0 for t in args.taus) or (args.temperature is not None and args.temperature <= 0):
        parser.error("temperatures must be > 0")
    embeddings, cfg = load_checkpoint_embedding(args.checkpoint)
    apply_trained_setting(args, trained_setting(cfg))
    dictionary, dict_path = load_target_dictionary(parser, args, cfg, embeddings.size(0))
    check_gold_masses(parser, args)

    excluded = excluded_token_ids(dictionary)
    neighbours, sims = neighbour_similarities(embeddings, args.topk, args.similarity, excluded)
    weights, counted_in = vocabulary_weights(parser, args, cfg, dictionary, dict_path, excluded)
    gold_q = mean_gold_q(sims, weights, args.taus)

    print(
        f"{args.checkpoint}: V = {len(dictionary)}, D = {embeddings.size(1)}, k = {args.topk}, "
        f"{args.similarity}; {len(excluded)} special/filler ids left out; weights: {counted_in}"
    )
    print_vocabulary_means(args, sims, weights, gold_q)
    found, missing = resolve_words(dictionary, args.words)
    if found:
        print_word_neighbours(args, dictionary, embeddings, found, neighbours, sims)
    for message in missing:
        print(f"skd-fairseq-inspect: {message}", file=sys.stderr)
    if args.plot:
        run_name = os.path.join(*os.path.abspath(args.checkpoint).split(os.sep)[-3:-1])
        plot(args.plot, args.taus, gold_q, run_name)
        print(f"\nplot: {args.plot}", file=sys.stderr)
    if missing:
        sys.exit(1)  # after listing every word that was found


if __name__ == "__main__":
    main()
