"""The scripts' guards on tiny inputs: what they refuse to delete, reuse or leave unscored."""

import hashlib
import json
import os
import shutil

import pytest
from conftest import REPO, USER_DIR, binarise_de_en, require_shared, run, save_teacher, tool

from skd_experiments import validation_perplexity
from skd_experiments.indexed_sizes import split_sizes

SCRIPTS = REPO / "scripts"


def words(start, n):
    return " ".join(f"w{(start + i) % 50}" for i in range(n))


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


# --- distill-sequence-level.sh ----------------------------------------------------------------


@pytest.fixture
def tiny_translation(tmp_path):
    """(data, teacher): a tiny de-en data directory binarised with the dictionaries of a tiny
    (untrained) teacher checkpoint, as distill-sequence-level.sh expects."""
    teacher, _ = save_teacher(tmp_path / "teacher")
    text = tmp_path / "text"
    text.mkdir()
    for split, n in (("train", 6), ("valid", 2), ("test", 2)):
        for lang, offset in (("de", 0), ("en", 7)):
            write_lines(text / f"{split}.{lang}", [words(offset + 3 * i, 3 + i % 3) for i in range(n)])
    data = tmp_path / "prepared" / "bin"
    binarise_de_en(text / "train", text / "valid", text / "test", tmp_path / "teacher" / "data", data)
    return data, teacher


def distill(data, teacher, out):
    return run(
        [
            "bash",
            SCRIPTS / "distill-sequence-level.sh",
            "--data",
            data,
            "--teacher",
            teacher,
            "-s",
            "de",
            "-t",
            "en",
            "--out",
            out,
            "--beam",
            "1",
            "--max-len-a",
            "0",
            "--max-len-b",
            "4",
            "--on-empty",
            "reference",
        ],
        check=False,
    )


@pytest.mark.slow
def test_distill_refuses_an_out_whose_bin_is_the_data(tiny_translation, tmp_path):
    data, teacher = tiny_translation
    files = sorted(p.name for p in data.iterdir())
    link = tmp_path / "linked"
    link.mkdir()
    (link / "bin").symlink_to(data)
    nested = tmp_path / "nested"
    (nested / "bin").mkdir(parents=True)
    shutil.copytree(data, nested / "bin" / "data")
    # --out data/X with --data data/X/bin (the finding), an OUT/bin that is a link to the data,
    # and an OUT/bin that holds the data: each refused before anything is deleted.
    for out, given in ((data.parent, data), (link, data), (nested, nested / "bin" / "data")):
        proc = distill(given, teacher, out)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert (
            proc.stderr.startswith("distill-sequence-level: --out ")
            and "is (or holds) the --data directory" in proc.stderr
        )
        assert "the data would be deleted; give another --out" in proc.stderr
        assert sorted(p.name for p in given.iterdir()) == files
    assert not (data.parent / "generate.train.txt").exists()


@pytest.mark.pipeline
def test_distill_translates_again_with_a_teacher_retrained_at_the_same_path(tiny_translation, tmp_path):
    data, teacher = tiny_translation
    out = tmp_path / "distilled"
    first = distill(data, teacher, out)
    assert first.returncode == 0, first.stderr
    assert "[distill] translating 6 training sentences" in first.stdout and (out / "bin" / ".done").exists()
    again = distill(data, teacher, out)
    assert again.returncode == 0 and "translating" not in again.stdout
    # Another teacher at the same path (retrained: another seed, and a later modification time).
    save_teacher(tmp_path / "teacher", seed=1)
    stat = os.stat(teacher)
    os.utime(teacher, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    retrained = distill(data, teacher, out)
    assert retrained.returncode == 0, retrained.stderr
    assert "[distill] translating 6 training sentences" in retrained.stdout
    assert f"size={os.path.getsize(teacher)} sha256=" in (out / ".generated").read_text()


# --- indexed_sizes.py -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["mmap", "cached"])
def test_indexed_sizes_reads_what_fairseq_reads(tmp_path, impl):
    """The lengths the evaluation and distillation scripts count, against fairseq's own reader:
    its default format read with numpy, a legacy one through fairseq."""
    import torch
    from fairseq.data import data_utils, indexed_dataset

    prefix = str(tmp_path / "train.de-en.en")
    lengths = [3, 17, 1, 250, 8]
    builder = indexed_dataset.make_builder(prefix + ".bin", impl=impl, vocab_size=40000)
    for n in lengths:
        builder.add_item(torch.arange(n) % 40000)
    builder.finalize(prefix + ".idx")
    sizes = split_sizes(prefix)
    assert sizes.tolist() == lengths == data_utils.load_indexed_dataset(prefix, None).sizes.tolist()
    assert split_sizes(str(tmp_path / "valid.de-en.en")) is None
    if impl == "mmap":  # the command line (the scripts' use), and a cut index is an error, not a shorter split
        out = run([*tool("indexed_sizes"), prefix]).stdout
        assert out.split() == [str(len(lengths)), str(sum(lengths))]
        proc = run([*tool("indexed_sizes"), tmp_path / "valid.de-en.en"], check=False)
        assert proc.returncode == 1 and "missing" in proc.stderr and "valid.de-en.en.idx" in proc.stderr
        index = tmp_path / "train.de-en.en.idx"
        index.write_bytes(index.read_bytes()[:30])
        with pytest.raises(ValueError, match="truncated: 1 of its 5 sentence lengths"):
            split_sizes(prefix)


# --- prepare-multi30k.sh, prepare-wikitext.sh ---------------------------------------------------


def copy_of(directory, destination):
    """A copy of a raw directory: the same content at another path, with other times."""
    shutil.copytree(directory, destination, copy_function=shutil.copyfile)
    return destination


@pytest.mark.slow
def test_prepare_multi30k_refuses_a_build_from_another_input(tmp_path):
    shared = require_shared("multi30k")
    out = tmp_path / "out"
    args = [
        "bash",
        SCRIPTS / "prepare-multi30k.sh",
        "-o",
        out,
        "--train-lines",
        "100",
        "--eval-lines",
        "10",
        "--vocab-size",
        "200",
    ]
    run([*args, "-r", shared])
    stamp = (out / "prepare.options").read_text()
    before = (out / "bin" / "train.de-en.en.bin").stat().st_mtime_ns
    assert "fairseq-preprocess" not in run([*args, "-r", shared]).stdout
    other = copy_of(shared, tmp_path / "other-raw")
    for rerun in ([*args, "-r", other], args):
        env = dict(os.environ, MULTI30K_DIR=str(other))  # the default -r
        proc = run(rerun, check=False, env=env)
        assert proc.returncode == 1, proc.stdout
        assert "was prepared with other options" in proc.stderr and os.path.realpath(shared) in proc.stderr
        assert "use another --out or delete it" in proc.stderr
    assert (out / "prepare.options").read_text() == stamp
    assert stamp.startswith("src=de tgt=en vocab_size=200 train_lines=100 eval_lines=10\n")
    assert f"{os.path.realpath(shared / 'train.de.gz')} size=" in stamp
    assert (out / "bin" / "train.de-en.en.bin").stat().st_mtime_ns == before
    # An OUT prepared before the input was recorded (settings alone): taken, and its input recorded.
    (out / "prepare.options").write_text(stamp.splitlines()[0] + "\n")
    assert "fairseq-preprocess" not in run([*args, "-r", shared]).stdout
    assert (out / "prepare.options").read_text() == stamp


@pytest.mark.slow
def test_prepare_wikitext_refuses_a_build_from_another_input(tmp_path):
    shared = require_shared("wikitext-2-sample")
    out = tmp_path / "out"
    args = [
        "bash",
        SCRIPTS / "prepare-wikitext.sh",
        "-o",
        out,
        "--train",
        "wiki.valid.tokens",
        "--valid",
        "wiki.test.tokens",
        "--test",
        "wiki.test.tokens",
        "--lines",
        "30",
    ]
    run([*args, "-r", shared])
    stamp = (out / "prepare.options").read_text()
    other = copy_of(shared, tmp_path / "other-raw")
    proc = run([*args, "-r", other], check=False)
    assert proc.returncode == 1, proc.stdout
    assert "was prepared with other options" in proc.stderr and os.path.realpath(shared) in proc.stderr
    assert (out / "prepare.options").read_text() == stamp
    assert stamp.startswith("train=wiki.valid.tokens valid=wiki.test.tokens test=wiki.test.tokens lines=30\n")
    assert f"{os.path.realpath(shared / 'wiki.valid.tokens')} size=" in stamp
    (out / "prepare.options").write_text(stamp.splitlines()[0] + "\n")
    assert "fairseq-preprocess" not in run([*args, "-r", shared]).stdout
    assert (out / "prepare.options").read_text() == stamp
    # Shorter evaluation splits are another build; the training file keeps --lines.
    proc = run([*args, "-r", shared, "--eval-lines", "10"], check=False)
    assert proc.returncode == 1 and "was prepared with other options" in proc.stderr
    short = tmp_path / "short"
    run([*args, "-r", shared, "--eval-lines", "10", "-o", short])
    counts = {split: sum(1 for _ in open(short / "text" / f"{split}.tokens")) for split in ("train", "valid", "test")}
    assert counts == {"train": 30, "valid": 10, "test": 10}
    assert (
        (short / "prepare.options")
        .read_text()
        .startswith("train=wiki.valid.tokens valid=wiki.test.tokens test=wiki.test.tokens lines=30 eval_lines=10\n")
    )
    proc = run([*args, "-r", shared, "--eval-lines", "0", "-o", tmp_path / "zero"], check=False)
    assert proc.returncode == 1 and "--eval-lines must be a positive integer, got '0'" in proc.stderr


# --- evaluate-lm.sh ---------------------------------------------------------------------------

TINY_LM = [
    "--arch",
    "transformer_lm",
    "--decoder-layers",
    "1",
    "--decoder-embed-dim",
    "16",
    "--decoder-ffn-embed-dim",
    "32",
    "--decoder-attention-heads",
    "2",
    "--tokens-per-sample",
    "16",
]


@pytest.fixture
def tiny_lm(tmp_path):
    """(config, run_dir, tokens in the test split): a tiny untrained language model with 16
    positions and data whose test split has lines of 4 to 22 tokens (end of sentence included)."""
    from conftest import write_dictionary
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    text = tmp_path / "text"
    text.mkdir()
    write_dictionary(tmp_path / "dict.txt", 50)
    write_lines(text / "train.txt", [words(i, 5) for i in range(5)])
    test_lines = [words(2 * i, n) for i, n in enumerate((3, 8, 21, 5, 12, 4))]  # 21 words: 22 tokens
    write_lines(text / "test.txt", test_lines)
    data = tmp_path / "bin"
    run(
        [
            "fairseq-preprocess",
            "--only-source",
            "--trainpref",
            text / "train.txt",
            "--validpref",
            text / "test.txt",
            "--testpref",
            text / "test.txt",
            "--srcdict",
            tmp_path / "dict.txt",
            "--destdir",
            data,
            "--workers",
            "1",
        ]
    )
    args = options.parse_args_and_arch(
        options.get_training_parser(),
        [
            str(data),
            "--task",
            "language_modeling",
            "--user-dir",
            USER_DIR,
            "--cpu",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--criterion",
            "cross_entropy",
            *TINY_LM,
        ],
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    assert model.max_positions() == 16
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    trainer.consolidate_optimizer()
    trainer.save_checkpoint(str(run_dir / "checkpoint_best.pt"), {})
    config = tmp_path / "lm.sh"
    config.write_text(f"DATASET=tiny-lm\nDATA={data}\n")
    return config, run_dir, sum(len(line.split()) + 1 for line in test_lines)


def evaluate_lm(config, run_dir, eval_lm_args):
    with open(config, "a") as f:
        f.write(f"EVAL_LM_ARGS=({eval_lm_args})\n")
    return run(["bash", SCRIPTS / "evaluate-lm.sh", config, "--run-dir", run_dir], check=False)


@pytest.mark.slow
def test_evaluate_lm_scores_every_token_of_the_split(tiny_lm):
    config, run_dir, tokens = tiny_lm
    # Blocks of 16 - 8 tokens with up to 8 of context: every block fits the model's 16 positions.
    proc = evaluate_lm(config, run_dir, "--tokens-per-sample 16 --context-window 8 --max-tokens 256")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run_dir / "result.test.json").read_text())
    assert result["metrics"]["tokens"] == tokens  # fairseq's own count: the end of each sentence included
    scores = (run_dir / "scores.test.tsv").read_text().splitlines()[1:]
    assert sum(int(line.split("\t")[1]) for line in scores) == tokens


@pytest.mark.slow
def test_evaluate_lm_refuses_a_split_whose_blocks_were_skipped(tiny_lm):
    config, run_dir, tokens = tiny_lm
    # Whole sentences in blocks of up to 16 tokens; the 22-token one makes a block of its own,
    # longer than the model's 16 positions, which fairseq-eval-lm drops with only a warning.
    # (--sample-break-mode eos would do the same, but fairseq's eos mode fails under numpy 2.)
    proc = evaluate_lm(config, run_dir, "--sample-break-mode complete --tokens-per-sample 16 --max-tokens 256")
    assert proc.returncode == 1, proc.stderr
    assert "will be skipped" in (run_dir / "eval-lm.test.log").read_text()
    assert f"evaluate-lm: fairseq-eval-lm scored {tokens - 22} of the {tokens} tokens of " in proc.stderr
    assert "drops the blocks longer than the model's max positions" in proc.stderr and "max_positions=16" in proc.stderr
    assert not (run_dir / "result.test.json").exists() and not (run_dir / "scores.test.tsv").exists()


@pytest.mark.slow
def test_validation_perplexity_reports_entropy_and_the_previous_tokens_probability(
    translation_teacher, multi30k_bin, tmp_path
):
    """validation_perplexity.py: perplexity, mean entropy and mean p(previous target token) of the
    teacher-forced predictions, against a float64 computation sentence by sentence."""
    import math

    import torch
    from fairseq import checkpoint_utils

    out = tmp_path / "stats.json"
    run([*tool("validation_perplexity"), multi30k_bin / "bin", "--path", translation_teacher, "--cpu", "--out", out])
    got = json.loads(out.read_text())
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(translation_teacher)], arg_overrides={"data": str(multi30k_bin / "bin")}
    )
    model = models[0].eval().double()
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    nll = entropy = previous = tokens = 0.0
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset.collater([dataset[i]])
            lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True)[0]
            target, before = sample["target"][0], sample["net_input"]["prev_output_tokens"][0]
            for j in range(target.numel()):
                p = lprobs[j].exp()
                nll -= float(lprobs[j, target[j]])
                entropy -= float((p * lprobs[j]).sum())
                previous += float(p[before[j]])
                tokens += 1
    assert got["tokens"] == tokens and got["sentences"] == len(dataset)
    assert got["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)
    assert got["entropy_nats"] == pytest.approx(entropy / tokens, rel=1e-4)
    assert got["p_previous_token"] == pytest.approx(previous / tokens, rel=1e-4)
    assert 0 < got["entropy_nats"] < math.log(len(task.target_dictionary)) and 0 < got["p_previous_token"] < 1
    # --reuse: the stored numbers while they name this checkpoint (by content), data and subset.
    command = [*tool("validation_perplexity"), multi30k_bin / "bin", "--path", translation_teacher, "--cpu"]
    out.write_text(json.dumps({**got, "ppl": 1.5}))
    assert json.loads(run([*command, "--out", out, "--reuse"]).stdout)["ppl"] == 1.5
    teacher_sha256 = got["checkpoint_sha256"]
    assert teacher_sha256 == hashlib.sha256(translation_teacher.read_bytes()).hexdigest()
    assert validation_perplexity.reusable(out, multi30k_bin / "bin", teacher_sha256, "valid")["ppl"] == 1.5
    for stored, data, subset in [
        ({**got, "checkpoint_sha256": "0" * 64}, multi30k_bin / "bin", "valid"),  # another checkpoint's
        (got, tmp_path, "valid"),
        (got, multi30k_bin / "bin", "test"),
    ]:
        out.write_text(json.dumps(stored))
        assert validation_perplexity.reusable(out, data, teacher_sha256, subset) is None
    proc = run([*command, "--reuse"], check=False)
    assert proc.returncode == 2 and "--reuse reads the --out file" in proc.stderr
    proc = run([*tool("validation_perplexity"), multi30k_bin / "bin", "--path", tmp_path / "none.pt"], check=False)
    assert proc.returncode == 2 and "none.pt: no such checkpoint file" in proc.stderr
