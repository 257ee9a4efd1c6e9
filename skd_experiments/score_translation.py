#!/usr/bin/env python
"""Score detokenised hypotheses against references with sacrebleu and write one result file.

  python -m skd_experiments.score_translation --hyp FILE --ref FILE --out RESULT.json [--tokenize 13a] [--lowercase]
      [--tokenized-hyp FILE --tokenized-ref FILE --tokenized-bleu plain|compound-split]
      [--valid-perplexity FILE.json] [--train-summary train.json] [--meta key=value ...]

BLEU and chrF with their sacrebleu signatures (--lowercase: both case-insensitive, for
corpora prepared lowercased such as IWSLT'14). The numbers of hypotheses and
references must match (fairseq drops a last batch smaller than
--required-batch-size-multiple; scoring a truncated set would be silently wrong).
With --tokenized-*, also the literature's tokenised BLEU on already tokenised text
(sacrebleu --tokenize none, i.e. multi-bleu.perl), for WMT'14 en-de after splitting
hyphenated compounds (a-b -> a ##AT##-##AT## b) as fairseq's compound_split_bleu.sh does.
With --valid-perplexity (the output of skd-fairseq-validation-perplexity for the same model), the
metrics also hold valid_ppl and valid_tokens.
"""

import argparse
import json
import os
import sys

from sacrebleu.metrics import BLEU, CHRF

from skd_experiments.results import write_result
from skd_experiments.text_tools import split_compounds


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def score(hyps, refs, tokenize="13a", lowercase=False):
    if len(hyps) != len(refs):
        raise SystemExit(
            f"score_translation: {len(hyps)} hypotheses for {len(refs)} references; refusing to score "
            "a partial output (was --required-batch-size-multiple 1 given to fairseq-generate?)"
        )
    bleu, chrf = BLEU(tokenize=tokenize, lowercase=lowercase), CHRF(lowercase=lowercase)
    b, c = bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    return {
        "bleu": round(b.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "bleu_detail": str(b),
        "chrf": round(c.score, 2),
        "chrf_signature": str(chrf.get_signature()),
        "sentences": len(hyps),
    }


def tokenized_bleu(hyps, refs, kind):
    if len(hyps) != len(refs):
        raise SystemExit(f"score_translation: {len(hyps)} tokenised hypotheses for {len(refs)} references")
    if kind == "compound-split":
        hyps, refs = [split_compounds(h) for h in hyps], [split_compounds(r) for r in refs]
    bleu = BLEU(tokenize="none")
    return {
        "bleu_tokenized": round(bleu.corpus_score(hyps, [refs]).score, 2),
        "bleu_tokenized_kind": kind,
        "bleu_tokenized_signature": str(bleu.get_signature()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hyp", required=True)
    parser.add_argument("--ref", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokenize", default="13a", help="sacrebleu BLEU tokenizer")
    parser.add_argument("--lowercase", action="store_true", help="case-insensitive BLEU and chrF")
    parser.add_argument("--tokenized-hyp", help="hypotheses before detokenisation")
    parser.add_argument("--tokenized-ref", help="tokenised references")
    parser.add_argument("--tokenized-bleu", choices=["plain", "compound-split"], default="plain")
    parser.add_argument("--valid-perplexity", help="skd-fairseq-validation-perplexity.s JSON for the scored model")
    parser.add_argument(
        "--train-summary",
        help="train.json of the run (used when it exists): its fields "
        "go to the result's top level (skd_experiments/results.py)",
    )
    parser.add_argument("--meta", nargs="*", default=[], help="key=value pairs stored in the result")
    args = parser.parse_args()

    result = dict(kv.split("=", 1) for kv in args.meta)
    result["metrics"] = score(read_lines(args.hyp), read_lines(args.ref), args.tokenize, args.lowercase)
    if bool(args.tokenized_hyp) != bool(args.tokenized_ref):
        parser.error("--tokenized-hyp and --tokenized-ref go together")
    if args.tokenized_hyp:
        result["metrics"].update(
            tokenized_bleu(read_lines(args.tokenized_hyp), read_lines(args.tokenized_ref), args.tokenized_bleu)
        )
    if args.valid_perplexity:
        with open(args.valid_perplexity) as f:
            valid = json.load(f)
        result["metrics"].update(valid_ppl=round(valid["ppl"], 3), valid_tokens=valid["tokens"])
    # Where the scored texts are, relative to the directory the result file physically lies in
    # (for significance tests and archiving later, also when the run is reached through a symlink).
    here = os.path.dirname(os.path.realpath(args.out))
    result["hypotheses"] = os.path.relpath(os.path.abspath(args.hyp), here)
    result["references"] = os.path.relpath(os.path.abspath(args.ref), here)
    result = write_result(args.out, result, args.train_summary)
    m = result["metrics"]
    print(
        f"BLEU {m['bleu']:.2f}  chrF {m['chrf']:.2f}  ({m['sentences']} sentences)  {m['bleu_signature']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
