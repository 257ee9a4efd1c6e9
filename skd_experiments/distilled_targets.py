#!/usr/bin/env python
"""Turn fairseq-generate's output on a whole split into a parallel text in the original order.

Reads the S-/T-/H- lines (subword pieces, as fairseq-generate prints them without
--remove-bpe), checks that every sentence id 0..N-1 was translated exactly once, and
writes PREFIX.SRC (the source) and PREFIX.TGT (the best hypothesis). Empty hypotheses
stop it, unless --on-empty reference keeps the original target for them (counted).
"""

import argparse
import json
import sys


def read_generate_output(path):
    sources, targets, hypotheses = {}, {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition("-")
            if kind not in ("S", "T", "H") or not rest[:1].isdigit():
                continue
            fields = rest.split("\t")
            sid = int(fields[0])
            if kind == "H":
                if sid in hypotheses:
                    raise SystemExit(
                        f"distilled_targets: sentence {sid} has several H- lines; run fairseq-generate with --nbest 1"
                    )
                hypotheses[sid] = fields[2] if len(fields) > 2 else ""
            else:
                (sources if kind == "S" else targets)[sid] = fields[1] if len(fields) > 1 else ""
    return sources, targets, hypotheses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generate-output", required=True, help="fairseq-generate's stdout for the split")
    parser.add_argument("--sentences", type=int, required=True, help="N, the number of pairs in the split")
    parser.add_argument("--prefix", required=True, help="writes PREFIX.SRC and PREFIX.TGT")
    parser.add_argument("-s", "--source-lang", required=True)
    parser.add_argument("-t", "--target-lang", required=True)
    parser.add_argument(
        "--on-empty",
        choices=("fail", "reference"),
        default="fail",
        help="what to do with an empty hypothesis (default: fail)",
    )
    parser.add_argument("--summary", help="write counts as JSON here")
    args = parser.parse_args(argv)

    sources, targets, hypotheses = read_generate_output(args.generate_output)
    missing = [i for i in range(args.sentences) if i not in hypotheses or i not in sources]
    extra = sorted(set(hypotheses) - set(range(args.sentences)))
    if missing or extra:
        sys.exit(
            f"distilled_targets: {len(hypotheses)} hypotheses for {args.sentences} sentences "
            f"({len(missing)} missing, first {missing[:5]}; {len(extra)} unexpected ids). fairseq-generate "
            "drops a last batch smaller than --required-batch-size-multiple (rerun it with "
            "--required-batch-size-multiple 1) and, with --skip-invalid-size-inputs-valid-test, "
            "sentences longer than the model allows"
        )
    empty = [i for i in range(args.sentences) if not hypotheses[i].strip()]
    if empty and args.on_empty == "fail":
        sys.exit(
            f"distilled_targets: {len(empty)} empty hypotheses (first ids {empty[:5]}); pass "
            "--on-empty reference to keep the original target for those sentences"
        )
    with (
        open(f"{args.prefix}.{args.source_lang}", "w", encoding="utf-8") as src,
        open(f"{args.prefix}.{args.target_lang}", "w", encoding="utf-8") as tgt,
    ):
        for i in range(args.sentences):
            src.write(sources[i] + "\n")
            tgt.write((targets.get(i, "") if i in empty else hypotheses[i]) + "\n")
    same = sum(hypotheses[i] == targets.get(i) for i in range(args.sentences))
    summary = {
        "sentences": args.sentences,
        "empty_hypotheses": len(empty),
        "empty_replaced_by_reference": len(empty) if args.on_empty == "reference" else 0,
        "hypothesis_equals_reference": same,
    }
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
