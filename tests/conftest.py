"""Shared fixtures: tiny in-process fairseq setups and tiny slices of Multi30k and the WikiText-2
sample (tests/data_sources.py finds them: SKD_SHARED_DATA, ../shared/data, or a download)."""

import contextlib
import io
import os
import pathlib
import subprocess
import sys

import data_sources
import forked_commands
import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
USER_DIR = str(REPO / "skd_fairseq")
BIN = pathlib.Path(sys.executable).parent


def one_layer_transformer(embed_dim, ffn_dim):
    """Flags of a one-layer, two-head translation transformer with shared embeddings: the tests'
    models differ only in width."""
    return (
        "--arch transformer --share-all-embeddings --encoder-layers 1 --decoder-layers 1"
        f" --encoder-embed-dim {embed_dim} --decoder-embed-dim {embed_dim}"
        f" --encoder-ffn-embed-dim {ffn_dim} --decoder-ffn-embed-dim {ffn_dim}"
        " --encoder-attention-heads 2 --decoder-attention-heads 2"
    ).split()


# In-process models; the fairseq-command and CUDA tests use SMALL_TRANSFORMER.
TINY_TRANSFORMER = one_layer_transformer(32, 64)
SMALL_TRANSFORMER = one_layer_transformer(64, 128)


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `-m "not slow"` must leave the pipelines out too
def pytest_collection_modifyitems(items):
    """A pipeline test is a slow one too. The longest tests first (whole script pipelines, then the
    other fairseq command and script runs): scripts/test.sh hands tests to its workers one at a time
    in this order, so that no long test starts last while the other cores have nothing left to run."""
    for item in items:
        if item.get_closest_marker("pipeline") and not item.get_closest_marker("slow"):
            item.add_marker("slow")

    def rank(item):
        return 0 if item.get_closest_marker("pipeline") else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)  # stable: collection order within each group


# The test being set up or run: run() and save_checkpoint() refuse to work for a test of the fast tier.
running_test = None


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures, session ones (multi30k_bin) included
def pytest_runtest_setup(item):
    global running_test
    running_test = item


def refuse_in_the_fast_tier(what):
    """Fail the running test unless it is marked slow: the fast tier (-m "not slow") must stay
    fast, and these are the steps that take seconds each."""
    if running_test is not None and not running_test.get_closest_marker("slow"):
        pytest.fail(
            f"{running_test.nodeid} {what} but is not marked slow: mark it @pytest.mark.slow (the fast tier,"
            ' -m "not slow", runs no fairseq command, script or process and writes no checkpoint; docs/testing.md)',
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def same_random_state():
    """Every test starts from the same torch random state, whichever tests its worker ran before
    (the workers take tests as they come free, so that order changes from run to run)."""
    torch.manual_seed(0)


def write_dictionary(path, n_words, extra=()):
    """A fairseq dict.txt of n_words words, padded with fairseq's filler like fairseq-preprocess."""
    from fairseq.data import Dictionary

    d = Dictionary()
    for i in range(n_words):
        d.add_symbol(f"w{i}", n=1000 - i)
    for symbol in extra:
        d.add_symbol(symbol, n=1)
    d.pad_to_multiple_(8)
    d.save(str(path))
    return d


def build_for_training(data, *args):
    """(task, model, criterion, cfg) from fairseq-train's arguments, built as fairseq-train would (CPU,
    no dropout, Adam)."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    common = ["--user-dir", USER_DIR, "--cpu", "--dropout", "0", "--optimizer", "adam", "--lr", "1e-3"]
    cfg = convert_namespace_to_omegaconf(
        options.parse_args_and_arch(options.get_training_parser(), [data, *common, *args])
    )
    task = tasks.setup_task(cfg.task)
    return task, task.build_model(cfg.model), task.build_criterion(cfg.criterion), cfg


def build_translation(tmp_path, criterion_args, n_words=60, arch_args=TINY_TRANSFORMER, langs=("de", "en")):
    """(task, model, criterion, cfg) for a tiny transformer (de-en by default) built as fairseq-train would."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for lang in ("de", "en"):
        write_dictionary(data / f"dict.{lang}.txt", n_words)
    return build_for_training(
        str(data), "--task", "translation", "-s", langs[0], "-t", langs[1], *arch_args, *criterion_args
    )


TINY_ADAPTIVE_LM = [
    "--arch",
    "transformer_lm",
    "--decoder-layers",
    "1",
    "--decoder-embed-dim",
    "32",
    "--decoder-ffn-embed-dim",
    "64",
    "--decoder-attention-heads",
    "2",
    "--tokens-per-sample",
    "16",
    "--adaptive-softmax-cutoff",
    "20,40",
    "--adaptive-softmax-factor",
    "2",
]


def build_language_model(tmp_path, criterion_args, arch_args=TINY_ADAPTIVE_LM, n_words=60):
    """(task, model, criterion, cfg) for a tiny transformer_lm built as fairseq-train would."""
    data = tmp_path / "lm-data"
    data.mkdir(exist_ok=True)
    write_dictionary(data / "dict.txt", n_words)
    return build_for_training(
        str(data), "--task", "language_modeling", "--ddp-backend", "legacy_ddp", *arch_args, *criterion_args
    )


def lm_sample(task, batch=4, length=12, seed=0):
    """A random language-model batch in fairseq's format, with padding at the end of some rows."""
    g = torch.Generator().manual_seed(seed)
    d = task.target_dictionary
    tokens = torch.randint(d.nspecial, len(d), (batch, length + 1), generator=g)
    tokens[1, -3:] = d.pad()
    source, target = tokens[:, :-1].clone(), tokens[:, 1:].clone()
    target[source.eq(d.pad())] = d.pad()
    return {
        "id": torch.arange(batch),
        "nsentences": batch,
        "ntokens": int(target.ne(d.pad()).sum()),
        "net_input": {"src_tokens": source, "src_lengths": source.ne(d.pad()).sum(1)},
        "target": target,
    }


def save_checkpoint(path, task, model, criterion, cfg):
    """Write ``model`` as a fairseq checkpoint with fairseq's own Trainer, as fairseq-train would."""
    refuse_in_the_fast_tier(f"writes the fairseq checkpoint {path}")
    from fairseq.trainer import Trainer

    trainer = Trainer(cfg, task, model, criterion)
    trainer.consolidate_optimizer()  # what fairseq's checkpoint_utils.save_checkpoint calls first
    trainer.save_checkpoint(str(path), {})
    return str(path)


def save_teacher(directory, n_words=60, seed=0, arch_args=TINY_TRANSFORMER, langs=("de", "en"), criterion_args=None):
    """(path, model): a teacher checkpoint written by fairseq's own Trainer; its dictionaries
    are in directory/data, where the checkpoint's task config points."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    ls = criterion_args or ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
    task, model, criterion, cfg = build_translation(directory, ls, n_words=n_words, arch_args=arch_args, langs=langs)
    return save_checkpoint(directory / "checkpoint.pt", task, model, criterion, cfg), model


def translation_sample(task, batch=6, src_len=7, tgt_len=9, seed=0):
    """A random batch in fairseq's format, with some padding at the end of targets."""
    g = torch.Generator().manual_seed(seed)
    d = task.target_dictionary
    low, high = d.nspecial, len(d) - 8  # real words only
    src = torch.randint(low, high, (batch, src_len), generator=g)
    target = torch.randint(low, high, (batch, tgt_len), generator=g)
    target[:, -1] = d.eos()
    target[1::2, -3] = d.eos()  # odd rows are two tokens shorter: right-padded
    target[1::2, -2:] = d.pad()
    prev = torch.full_like(target, d.pad())
    prev[:, 0] = d.eos()
    prev[:, 1:] = target[:, :-1]
    prev.masked_fill_(prev.eq(d.eos()) & (torch.arange(tgt_len) > 0), d.pad())
    ntokens = int(target.ne(d.pad()).sum())
    return {
        "net_input": {
            "src_tokens": src,
            "src_lengths": torch.full((batch,), src_len),
            "prev_output_tokens": prev,
        },
        "target": target,
        "ntokens": ntokens,
        "nsentences": batch,
    }


def run(cmd, timeout=600, check=True, env=None, fork=True, **kwargs):
    """Run a command with the venv's bin directory first on PATH; on failure show its output.
    fairseq's and the project's Python commands run in a fork of this worker, which has imported
    torch and fairseq already (tests/forked_commands.py says when; fork=False for a new
    interpreter). Only tests marked slow run commands."""
    cmd = [str(c) for c in cmd]
    refuse_in_the_fast_tier(f"runs {' '.join(cmd)[:200]}")
    if not os.path.isabs(cmd[0]) and (BIN / cmd[0]).exists():
        cmd[0] = str(BIN / cmd[0])
    forkable = fork and env is None and set(kwargs) <= {"cwd", "input"}
    target = forked_commands.target_of(cmd, BIN) if forkable else None
    env = dict(env or os.environ, PYTHONWARNINGS="ignore")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    if target is not None:
        proc = forked_commands.run_forked(cmd, target, timeout, env, **kwargs)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def make_tables(*args, check=True):
    """skd-fairseq-tables ARGS in this process (its tests call it often; a process would import scipy
    and matplotlib each time): a CompletedProcess with its stdout, stderr and exit status."""
    from skd_experiments import make_tables as tables

    refuse_in_the_fast_tier("writes tables")
    stdout, stderr, status = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            tables.main([str(a) for a in args])
        except SystemExit as end:  # as the interpreter reports it: a message means status 1
            status = forked_commands.exit_status(end)
    proc = subprocess.CompletedProcess(["skd-fairseq-tables", *args], status, stdout.getvalue(), stderr.getvalue())
    if check and status != 0:
        raise AssertionError(f"skd-fairseq-tables exited {status}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def binarise_de_en(train, valid, test, dictionaries, destdir):
    """fairseq-preprocess of the de-en text prefixes ``train``, ``valid`` and ``test`` with the
    dict.de.txt and dict.en.txt in ``dictionaries``, into ``destdir``."""
    run(
        [
            *("fairseq-preprocess", "-s", "de", "-t", "en"),
            *("--trainpref", train, "--validpref", valid, "--testpref", test),
            *("--srcdict", dictionaries / "dict.de.txt", "--tgtdict", dictionaries / "dict.en.txt"),
            *("--destdir", destdir, "--workers", "1"),
        ]
    )
    return destdir


def preset_arguments(env=None):
    """{preset: its fairseq arguments}, read from configs/presets.sh as train.sh reads it."""
    script = (
        '. configs/presets.sh; for p in $PRESETS; do v="PRESET_${p//-/_}[@]"; '
        'printf "%s" "$p"; printf "\\t%s" "${!v}"; printf "\\n"; done'
    )
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, **(env or {})),
    ).stdout
    return {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}


def tool(module):
    """The command that runs skd_experiments.MODULE (what the shell scripts run)."""
    return [sys.executable, "-m", f"skd_experiments.{module}"]


def require_shared(name):
    """The directory of dataset NAME, "multi30k" or "wikitext-2-sample", found by
    tests/data_sources.py (SKD_SHARED_DATA, ../shared/data or a download); when it is neither local
    nor downloadable, the test fails with what to set."""
    try:
        return data_sources.locate(name)
    except data_sources.DataUnavailable as error:
        pytest.fail(str(error), pytrace=False)


def prepare_multi30k_slice(out):
    """The prepare-multi30k.sh command of the multi30k_bin fixture: tests that rerun it with the
    same options (a resume) or add one (the language-model side) start from this list."""
    slice_options = ["--train-lines", "2000", "--eval-lines", "100", "--vocab-size", "1000"]
    return [
        "bash",
        REPO / "scripts" / "prepare-multi30k.sh",
        "-r",
        require_shared("multi30k"),
        "-o",
        out,
        *slice_options,
    ]


@pytest.fixture(scope="session")
def multi30k_bin(tmp_path_factory):
    """Multi30k de-en, first 2,000 training and 100 valid/test pairs, 1,000 sentencepieces."""
    out = tmp_path_factory.mktemp("multi30k")
    run(prepare_multi30k_slice(out))
    return out


@pytest.fixture(scope="session")
def wikitext_bin(tmp_path_factory):
    """WikiText-2 sample: train on the first 800 lines of wiki.valid.tokens (pytorch/examples'
    valid.txt when downloaded), validate and test on the first 100 lines of wiki.test.tokens (about
    5,000 tokens: evaluation dominated the LM tests' time)."""
    out = tmp_path_factory.mktemp("wikitext")
    run(
        [
            "bash",
            REPO / "scripts" / "prepare-wikitext.sh",
            "-r",
            require_shared("wikitext-2-sample"),
            "-o",
            out,
            "--train",
            "wiki.valid.tokens",
            "--valid",
            "wiki.test.tokens",
            "--test",
            "wiki.test.tokens",
            "--lines",
            "800",
            "--eval-lines",
            "100",
        ]
    )
    return out


@pytest.fixture(scope="session")
def translation_teacher(multi30k_bin, tmp_path_factory):
    """A checkpoint of the command tests' translation model, trained with label smoothing for 15
    updates on the Multi30k slice: the teacher of the KD and distributed command tests."""
    from test_fairseq_commands import TRANSLATION_MODEL, train

    save_dir = tmp_path_factory.mktemp("translation-teacher")
    train(
        multi30k_bin / "bin",
        save_dir,
        *TRANSLATION_MODEL,
        "--criterion",
        "label_smoothed_cross_entropy",
        "--label-smoothing",
        "0.1",
        "--max-update",
        "15",
    )
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def translation_teacher_cache(translation_teacher, multi30k_bin, tmp_path_factory):
    """skd-fairseq-cache-teacher's cache (top 8) of translation_teacher over the slice's training
    split, built from a copy of the checkpoint that is deleted afterwards: a run that reads the
    cache cannot load the teacher."""
    import shutil

    out = tmp_path_factory.mktemp("translation-teacher-cache")
    copy = out / "teacher.pt"
    shutil.copy(translation_teacher, copy)
    cache = out / "cache"
    run(
        [
            "skd-fairseq-cache-teacher",
            multi30k_bin / "bin",
            "--user-dir",
            USER_DIR,
            "--cpu",
            "-s",
            "de",
            "-t",
            "en",
            "--path",
            copy,
            "--subset",
            "train",
            "--topk",
            "8",
            "--out",
            cache,
            "--log-format",
            "simple",
        ]
    )
    copy.unlink()
    return cache


@pytest.fixture
def fresh_metrics():
    """An empty fairseq metrics registry, as fairseq-train starts with."""
    from fairseq.logging import metrics

    metrics.reset()
    yield metrics
    metrics.reset()


def tiny_config(tmp_path, multi30k_bin):
    """A config (configs/*.sh format) for a tiny transformer on the Multi30k slice: 8 updates.
    Hypotheses are capped near the source length: an untrained model would decode to fairseq's
    default 200 tokens, which made generation most of the evaluation's time."""
    config = tmp_path / "tiny-demo.sh"
    config.write_text(f"""
DATASET=multi30k-slice
PAIR=de-en
SRC=de
TGT=en
DATA_DIR={multi30k_bin}
PREPARE=(scripts/prepare-multi30k.sh -o {multi30k_bin})
DATA=$DATA_DIR/bin
REFERENCE_PREFIX=$DATA_DIR/raw
POST_PROCESS=sentencepiece
FAIRSEQ_ARGS=(--task translation -s de -t en --arch transformer --share-all-embeddings
  --encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 64 --decoder-embed-dim 64
  --encoder-ffn-embed-dim 128 --decoder-ffn-embed-dim 128
  --encoder-attention-heads 2 --decoder-attention-heads 2
  --optimizer adam --adam-betas '(0.9, 0.98)' --lr 2e-3 --max-tokens 1024 --max-update 8
  --save-interval-updates 4 --keep-interval-updates 2 --no-epoch-checkpoints
  --required-batch-size-multiple 1 --num-workers 0)
GENERATE_ARGS=(--beam 2 --max-tokens 4000 --max-len-a 1 --max-len-b 5)
AVERAGE_LAST=1
""")
    return config
