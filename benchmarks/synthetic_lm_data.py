#!/usr/bin/env python
"""Synthetic language-model data with WikiText-103's dictionary size, for timing a model.

  synthetic_lm_data.py --out DIR [--vocab 267744] [--train-tokens 200000] [--seed 1]

Writes DIR/dict.txt (``--vocab`` entries with fairseq's 4 special symbols, so the model's
output layer has WikiText-103's 267,744 rows), text whose words follow Zipf's law over that
dictionary (word r drawn with probability proportional to 1 / r, as in natural text, so the
adaptive softmax's frequency clusters get shares of the tokens like those of real text: with
cutoffs 20,000 / 60,000 about 80 % head, 8 % and 11 % tails), binarises it with
``fairseq-preprocess --only-source`` into DIR/bin,
and marks it finished (DIR/bin/.done) for ``scripts/train.sh --data DIR/bin``. The words
are ``w0``, ``w1``, ... in the dictionary's (descending frequency) order. Nothing here is
meant to be learnt: only the shapes and the cluster shares matter for step time and memory.
"""

import argparse
import os
import subprocess
import sys

import numpy as np

SPECIAL_SYMBOLS = 4  # <s>, <pad>, </s>, <unk>: fairseq's Dictionary adds them before the words
WORDS_PER_LINE = 100


def zipf_tokens(rng: np.random.Generator, words: int, count: int) -> np.ndarray:
    """``count`` word ranks in [0, words), rank r with probability proportional to 1 / (r + 1)."""
    cdf = np.cumsum(1.0 / np.arange(1, words + 1))
    return np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right").clip(max=words - 1)


def write_split(path: str, ranks: np.ndarray) -> None:
    with open(path, "w") as f:
        for start in range(0, len(ranks), WORDS_PER_LINE):
            f.write(" ".join(f"w{r}" for r in ranks[start : start + WORDS_PER_LINE]) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory to create (text, dict.txt, bin/)")
    parser.add_argument("--vocab", type=int, default=267744, help="dictionary size with the 4 special symbols")
    parser.add_argument("--train-tokens", type=int, default=200000, help="tokens of the training split")
    parser.add_argument("--valid-tokens", type=int, default=10000, help="tokens of the validation split")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.vocab <= SPECIAL_SYMBOLS + 1:
        parser.error(f"--vocab must exceed the {SPECIAL_SYMBOLS} special symbols, got {args.vocab}")
    if args.train_tokens < 1 or args.valid_tokens < 1:
        parser.error("--train-tokens and --valid-tokens must be positive")
    words = args.vocab - SPECIAL_SYMBOLS
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    # Counts that keep w0, w1, ... in this order when fairseq sorts the dictionary by count.
    with open(os.path.join(args.out, "dict.txt"), "w") as f:
        f.writelines(f"w{r} {words - r}\n" for r in range(words))
    for split, count in (("train", args.train_tokens), ("valid", args.valid_tokens)):
        write_split(os.path.join(args.out, f"{split}.txt"), zipf_tokens(rng, words, count))
    bin_dir = os.path.join(args.out, "bin")
    cmd = [
        sys.executable,
        "-m",
        "fairseq_cli.preprocess",
        "--only-source",
        "--task",
        "language_modeling",
        "--srcdict",
        os.path.join(args.out, "dict.txt"),
        "--trainpref",
        os.path.join(args.out, "train.txt"),
        "--validpref",
        os.path.join(args.out, "valid.txt"),
        "--destdir",
        bin_dir,
        "--workers",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"synthetic_lm_data: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    with open(os.path.join(bin_dir, "dict.txt")) as f:
        entries = sum(1 for _ in f) + SPECIAL_SYMBOLS
    if entries != args.vocab:
        sys.exit(f"synthetic_lm_data: the binarised dictionary has {entries} entries, expected {args.vocab}")
    open(os.path.join(bin_dir, ".done"), "w").close()
    print(f"[synthetic_lm_data] {bin_dir}: {entries} dictionary entries, {args.train_tokens} training tokens")


if __name__ == "__main__":
    main()
