"""Turn fairseq-eval-lm's log into a result file and per-sample scores (scripts/evaluate-lm.sh).

  python -m skd_experiments.eval_lm_result LOG --run-dir DIR --split SPLIT --data DATA
      --checkpoint LABEL --dataset NAME --eval-args "ARGS"

Reads the perplexity and, from --output-word-probs, every sample's token log-probabilities;
checks that every token of the split was scored once and that the samples reproduce
fairseq's perplexity; writes DIR/scores.SPLIT.tsv (id, tokens, summed natural-log
probability) and DIR/result.SPLIT.json with the run's train.json.
"""

import argparse
import math
import os
import re
import sys

from skd_experiments.indexed_sizes import split_sizes
from skd_experiments.results import write_result

PERPLEXITY = re.compile(r"Loss \(base 2\): ([0-9.]+), Perplexity: ([0-9.]+)")
EVALUATED = re.compile(r"Evaluated ([0-9,]+) tokens")
# --output-word-probs: one line per sample, "ID tok [logp]<TAB>tok [logp]...", natural log; either logging format.
SAMPLE = re.compile(r"fairseq_cli\.eval_lm(?::| \| )(\d+) (.*)$")
WORD_SCORE = re.compile(r" \[(-?(?:[0-9.]+|inf))\](?:\t|$)")
SKIPPED = re.compile(r"[0-9,]+ samples (?:from \S+ )?have invalid sizes and will be skipped.*")


def sample_scores(text):
    """{sample id: (tokens, summed log-probability)} and the number of infinite scores left out
    (as fairseq-eval-lm leaves them out)."""
    samples, infinite = {}, 0
    for line in text.splitlines():
        match = SAMPLE.search(line)
        if match:
            scores = [float(s) for s in WORD_SCORE.findall(" " + match.group(2))]
            infinite += sum(not math.isfinite(s) for s in scores)
            scores = [s for s in scores if math.isfinite(s)]
            samples[int(match.group(1))] = (len(scores), math.fsum(scores))
    return samples, infinite


def check_every_token_scored(text, log, samples, infinite, split, data):
    """Each block's targets are its own tokens, end of sentence included (a context window only adds
    context), so every token of the split is scored once; fairseq-eval-lm silently drops a block
    longer than the model's positions (ignore_invalid_inputs, one "will be skipped" log line)."""
    scored = sum(n for n, _ in samples.values())
    split_path = os.path.join(data.split(os.pathsep)[0], split)  # fairseq evaluates the first of DATA1:DATA2
    sizes = split_sizes(split_path)
    if sizes is None:
        sys.exit(f"evaluate-lm: cannot read the {split} split of {data} ({split_path}.bin/.idx) to count its tokens")
    expected = int(sizes.sum())
    if scored == expected:
        return
    skipped = SKIPPED.search(text)
    sys.exit(
        f"evaluate-lm: fairseq-eval-lm scored {scored:,} of the {expected:,} tokens of {split_path} "
        + (
            f'(it drops the blocks longer than the model\'s max positions: "{skipped.group(0)}"); give '
            "EVAL_LM_ARGS a --tokens-per-sample (minus --context-window) the model takes, or another "
            "--sample-break-mode"
            if skipped
            else f"({infinite} tokens had an infinite log-probability)"
            if infinite
            else f"(the log has per-token scores for {len(samples)} samples only)"
        )
        + f"; no result written (log: {log})"
    )


def write_eval_lm_result(log, run_dir, split, checkpoint, dataset, eval_args, data):
    with open(log) as f:
        text = f.read()
    loss, tokens = PERPLEXITY.search(text), EVALUATED.search(text)
    if not loss or not tokens:
        sys.exit(f"evaluate-lm: no perplexity in {log}")
    samples, infinite = sample_scores(text)
    check_every_token_scored(text, log, samples, infinite, split, data)
    scored = sum(n for n, _ in samples.values())
    ppl = math.exp(-math.fsum(s for _, s in samples.values()) / max(scored, 1))
    # The per-sample scores must reproduce fairseq's own perplexity, or the bootstrap would test something else.
    if not samples or abs(ppl - float(loss.group(2))) > 1e-3 * float(loss.group(2)) + 0.01:
        sys.exit(
            f"evaluate-lm: the per-sample scores in {log} ({len(samples)} samples, perplexity {ppl:.2f}) "
            f"do not reproduce fairseq-eval-lm's perplexity {loss.group(2)}"
        )
    scores_file = f"scores.{split}.tsv"
    with open(os.path.join(run_dir, scores_file), "w") as f:
        f.write("id\ttokens\tlogprob\n")
        f.writelines(f"{i}\t{n}\t{s!r}\n" for i, (n, s) in sorted(samples.items()))
    result = {
        "dataset": dataset,
        "pair": "",
        "split": split,
        "checkpoint": checkpoint,
        "eval_lm_args": eval_args,
        "scores": scores_file,
        "metrics": {
            "ppl": float(loss.group(2)),
            "loss_base2": float(loss.group(1)),
            "tokens": int(tokens.group(1).replace(",", "")),
        },
    }
    out = os.path.join(run_dir, f"result.{split}.json")
    return out, write_result(out, result, os.path.join(run_dir, "train.json"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="fairseq-eval-lm's output, run with --output-word-probs")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--data", required=True, help="the DATA fairseq-eval-lm read")
    parser.add_argument("--checkpoint", required=True, help="which model was scored (a label for the result)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--eval-args", default="", help="the fairseq-eval-lm options, as one string")
    args = parser.parse_args()
    out, result = write_eval_lm_result(
        args.log, args.run_dir, args.split, args.checkpoint, args.dataset, args.eval_args, args.data
    )
    print(
        f"perplexity {result['metrics']['ppl']:.2f} on {result['metrics']['tokens']} tokens -> {out}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
