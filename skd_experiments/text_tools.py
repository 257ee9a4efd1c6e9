#!/usr/bin/env python
"""The Moses-style text steps of fairseq's IWSLT'14 / WMT'14 recipes, with sacremoses.

  python -m skd_experiments.text_tools tokenize --lang L [--aggressive-dash] [--normalize-punct]
                                             [--lowercase] [--workers N] < in > out
  python -m skd_experiments.text_tools detokenize --lang L < in > out
  python -m skd_experiments.text_tools clean --ratio 1.5 --min 1 --max 175 [--kept-lines FILE]
                                             SRC_IN TGT_IN SRC_OUT TGT_OUT
  python -m skd_experiments.text_tools segments < file.xml|file.sgm > text   (the <seg> contents, one a line)
  python -m skd_experiments.text_tools compound-split < in > out   (a-b -> a ##AT##-##AT## b, for WMT'14 BLEU)

tokenize follows tokenizer.perl (-a: --aggressive-dash), normalize-punctuation.perl
(--normalize-punct, which also drops non-printing characters as
remove-non-printing-char.perl does) and lowercase.perl; clean follows
clean-corpus-n.perl: drop pairs with an empty side, a side longer than --max or
shorter than --min tokens, or a length ratio above --ratio; --kept-lines writes the
1-based line numbers of the pairs it kept (to pick the same pairs from other text).
"""

import argparse
import multiprocessing
import os
import re
import sys

from sacremoses import MosesDetokenizer, MosesPunctNormalizer, MosesTokenizer

_worker = {}


def _init_tokenizer(lang, aggressive_dash, normalize_punct, lowercase):
    _worker.update(
        tokenizer=MosesTokenizer(lang=lang),
        normalizer=MosesPunctNormalizer(lang=lang, post_remove_control_chars=True) if normalize_punct else None,
        aggressive_dash=aggressive_dash,
        lowercase=lowercase,
    )


def _tokenize(line):
    if _worker["normalizer"] is not None:
        line = _worker["normalizer"].normalize(line)
    out = _worker["tokenizer"].tokenize(
        line, aggressive_dash_splits=_worker["aggressive_dash"], return_str=True, escape=True
    )
    return out.lower() if _worker["lowercase"] else out


def tokenize(args):
    lines = [line.rstrip("\n") for line in sys.stdin]
    init = (args.lang, args.aggressive_dash, args.normalize_punct, args.lowercase)
    if args.workers > 1 and len(lines) > 10000:
        with multiprocessing.Pool(args.workers, _init_tokenizer, init) as pool:
            out = pool.map(_tokenize, lines, chunksize=2000)
    else:
        _init_tokenizer(*init)
        out = map(_tokenize, lines)
    sys.stdout.writelines(line + "\n" for line in out)


def detokenize(args):
    detok = MosesDetokenizer(lang=args.lang)
    for line in sys.stdin:
        sys.stdout.write(detok.detokenize(line.split()) + "\n")


def clean(args):
    kept = dropped = 0
    with (
        open(args.src_in, encoding="utf-8") as fs,
        open(args.tgt_in, encoding="utf-8") as ft,
        open(args.src_out, "w", encoding="utf-8") as gs,
        open(args.tgt_out, "w", encoding="utf-8") as gt,
        open(args.kept_lines or os.devnull, "w") as gk,
    ):
        for number, (s, t) in enumerate(zip(fs, ft), 1):
            s, t = " ".join(s.split()), " ".join(t.split())
            ns, nt = len(s.split()), len(t.split())
            if (
                ns == 0
                or nt == 0
                or ns > args.max
                or nt > args.max
                or ns < args.min
                or nt < args.min
                or ns / nt > args.ratio
                or nt / ns > args.ratio
            ):
                dropped += 1
                continue
            gs.write(s + "\n")
            gt.write(t + "\n")
            gk.write(f"{number}\n")
            kept += 1
        if next(fs, None) is not None or next(ft, None) is not None:
            sys.exit(f"text_tools clean: {args.src_in} and {args.tgt_in} have different numbers of lines")
    print(f"clean: kept {kept}, dropped {dropped}", file=sys.stderr)


SEGMENT = re.compile(r"<seg id=\"?\d+\"?>\s*(.*?)\s*</seg>")


def segments(args):
    for line in sys.stdin:
        m = SEGMENT.search(line)
        if m:
            sys.stdout.write(m.group(1).replace("\u2019", "'") + "\n")


def split_compounds(line):
    """a-b -> a ##AT##-##AT## b, as fairseq's compound_split_bleu.sh (also used by score_translation.py)."""
    return re.sub(r"(\S)-(\S)", r"\1 ##AT##-##AT## \2", line)


def compound_split(args):
    for line in sys.stdin:
        sys.stdout.write(split_compounds(line.rstrip("\n")) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tokenize")
    p.add_argument("--lang", required=True)
    p.add_argument("--aggressive-dash", action="store_true")
    p.add_argument("--normalize-punct", action="store_true")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(run=tokenize)
    p = sub.add_parser("detokenize")
    p.add_argument("--lang", required=True)
    p.set_defaults(run=detokenize)
    p = sub.add_parser("clean")
    p.add_argument("--ratio", type=float, required=True)
    p.add_argument("--min", type=int, required=True)
    p.add_argument("--max", type=int, required=True)
    p.add_argument("--kept-lines", help="write the 1-based line numbers of the kept pairs here")
    for name in ("src_in", "tgt_in", "src_out", "tgt_out"):
        p.add_argument(name)
    p.set_defaults(run=clean)
    sub.add_parser("segments").set_defaults(run=segments)
    sub.add_parser("compound-split").set_defaults(run=compound_split)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
