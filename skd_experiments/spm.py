#!/usr/bin/env python
"""Train, apply and remove a sentencepiece model (the Python API; no spm_* binaries needed).

python -m skd_experiments.spm train  --model-prefix P --vocab-size N FILE [FILE ...]
python -m skd_experiments.spm encode --model P.model < raw > pieces
python -m skd_experiments.spm decode --model P.model < pieces > raw
"""

import argparse
import sys

import sentencepiece as spm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a unigram model on the given files")
    train.add_argument("--model-prefix", required=True)
    train.add_argument("--vocab-size", type=int, required=True)
    train.add_argument("--seed", type=int, default=1, help="sentence sampling seed")
    train.add_argument("files", nargs="+")
    for name in ("encode", "decode"):
        sub.add_parser(name, help=f"{name} stdin to stdout").add_argument("--model", required=True)
    args = parser.parse_args(argv)

    if args.command == "train":
        spm.set_random_generator_seed(args.seed)
        spm.SentencePieceTrainer.train(
            input=",".join(args.files),
            model_prefix=args.model_prefix,
            vocab_size=args.vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            num_threads=2,
            minloglevel=2,
        )
        return
    processor = spm.SentencePieceProcessor(model_file=args.model)
    lines = [line.rstrip("\n") for line in sys.stdin]
    if args.command == "encode":
        out = (" ".join(pieces) for pieces in processor.encode(lines, out_type=str))
    else:
        out = (processor.decode(line.split()) for line in lines)
    sys.stdout.writelines(line + "\n" for line in out)


if __name__ == "__main__":
    main()
