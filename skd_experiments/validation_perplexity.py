#!/usr/bin/env python
"""Perplexity of a translation checkpoint on one split, with plain cross-entropy.

  skd-fairseq-validation-perplexity DATA --path CHECKPOINT [--subset valid] [-s de -t en]
                                   [--max-tokens 8000] [--cpu] [--out FILE.json [--reuse]]

The model's own log-probability of every reference token (target pieces and the final
eos, padding left out), with dropout off: perplexity = exp(-sum log p / tokens), the
same number as the ``ppl`` fairseq-train logs for the split (2 ** nll_loss). It needs no
criterion, so every method is scored alike: a checkpoint trained with R-Drop (whose
criterion duplicates each batch, doubling the loss it logs) or with SKD (validated at
alpha = 0) gets the plain number. Beside it, two readings of the predicted distributions at
the same positions (teacher-forced, means over tokens): their entropy in nats (how sharp the
model is) and the probability of the previous target token (how much it would repeat).
Prints, and with --out writes, a JSON object: {"ppl", "nll_base2", "entropy_nats",
"p_previous_token", "tokens", "sentences", "subset", "data", "checkpoint_sha256"}. With
--reuse, an --out file that already holds this checkpoint's numbers (same sha256, data and
subset) is printed and nothing is computed: evaluate-translation.sh scores a model's beam and
greedy translations, and the perplexity does not depend on the decoding.
"""

import argparse
import json
import math
import os

from skd_experiments.teacher_cache_check import sha256


def perplexity(data, path, subset="valid", source=None, target=None, max_tokens=8000, cpu=False):
    # Imported here: --reuse answers without loading torch and fairseq (seconds).
    import torch
    from fairseq import checkpoint_utils, utils

    import skd_fairseq  # noqa: F401  (registers the criteria, allow-lists fairseq checkpoints)

    overrides = {"data": data}
    if source and target:
        overrides.update(source_lang=source, target_lang=target)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
    model = models[0].eval()
    use_cuda = torch.cuda.is_available() and not cpu
    if use_cuda:
        model.cuda()
    task.load_dataset(subset)
    dataset = task.dataset(subset)
    batches = task.get_batch_iterator(
        dataset=dataset,
        max_tokens=max_tokens,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        required_batch_size_multiple=1,  # never drop a last small batch (fairseq issues 5036, 5351)
    ).next_epoch_itr(shuffle=False)
    pad = task.target_dictionary.pad()
    nll, entropy, previous, tokens, sentences = 0.0, 0.0, 0.0, 0, 0
    with torch.no_grad():
        for sample in batches:
            if use_cuda:
                sample = utils.move_to_cuda(sample)
            lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True).float()
            gold = sample["target"]
            picked = lprobs.gather(-1, gold.unsqueeze(-1)).squeeze(-1)
            real = gold.ne(pad)
            nll -= float(picked[real].double().sum())
            probs = lprobs.exp()
            entropy -= float((probs * lprobs).sum(-1)[real].double().sum())
            before = sample["net_input"]["prev_output_tokens"]  # position i holds target i - 1 (eos first)
            previous += float(probs.gather(-1, before.unsqueeze(-1)).squeeze(-1)[real].double().sum())
            tokens += int(real.sum())
            sentences += gold.size(0)
    if sentences != len(dataset):
        raise SystemExit(f"validation_perplexity: scored {sentences} of {len(dataset)} sentences of {subset}")
    return {
        "ppl": math.exp(nll / tokens),
        "nll_base2": nll / tokens / math.log(2),
        "entropy_nats": entropy / tokens,
        "p_previous_token": previous / tokens,
        "tokens": tokens,
        "sentences": sentences,
        "subset": subset,
    }


def reusable(out, data, checkpoint_sha256, subset):
    """The result stored in ``out`` when it was computed for the checkpoint with this sha256, data
    directory and subset; else None."""
    if not os.path.isfile(out):
        return None
    with open(out) as f:
        stored = json.load(f)
    same = (stored.get("data"), stored.get("subset")) == (os.path.abspath(data), subset)
    return stored if same and stored.get("checkpoint_sha256") == checkpoint_sha256 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--path", required=True)
    parser.add_argument("--subset", default="valid")
    parser.add_argument("-s", "--source-lang")
    parser.add_argument("-t", "--target-lang")
    parser.add_argument("--max-tokens", type=int, default=8000)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--out")
    parser.add_argument(
        "--reuse", action="store_true", help="print --out instead when it holds this checkpoint's numbers"
    )
    args = parser.parse_args()
    if args.reuse and not args.out:
        parser.error("--reuse reads the --out file: give --out FILE.json")
    if not os.path.isfile(args.path):
        parser.error(f"--path {args.path}: no such checkpoint file")
    checkpoint_sha256 = sha256(args.path)  # read once: a checkpoint is hundreds of MB
    result = reusable(args.out, args.data, checkpoint_sha256, args.subset) if args.reuse else None
    if result is None:
        result = perplexity(
            args.data, args.path, args.subset, args.source_lang, args.target_lang, args.max_tokens, args.cpu
        )
        result.update(data=os.path.abspath(args.data), checkpoint_sha256=checkpoint_sha256)
    text = json.dumps(result)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
