"""fairseq's own distributed training with two real CPU ranks (gloo, loopback) against one process.

Two ranks with one batch each per update see the same global batches as one process
with --update-freq 2, so the weights after N updates must agree up to the order of the
fp32 gradient sums (all-reduce across ranks vs accumulation in one process): atol 1e-5.
Dropout is off so that no random mask depends on the rank.
"""

import socket
import subprocess

import pytest
import torch
from conftest import BIN, USER_DIR, run
from test_fairseq_commands import TRANSLATION_MODEL, train_logs

from skd_fairseq.schedule import skd_alpha

UPDATES = 6
COMMON = [
    *TRANSLATION_MODEL,
    "--optimizer",
    "adam",
    "--lr",
    "2e-3",
    "--dropout",
    "0",
    "--max-tokens",
    "512",
    "--cpu",
    "--seed",
    "1",
    "--num-workers",
    "0",
    "--log-format",
    "json",
    "--log-interval",
    "1",
    "--no-epoch-checkpoints",
    "--required-batch-size-multiple",
    "1",
    "--max-update",
    str(UPDATES),
    "--disable-validation",
    "--label-smoothing",
    "0.1",
]
SCHEDULE = ["--skd-alpha", "0.6", "--skd-start-update", "1", "--skd-warmup-updates", "3"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_two_ranks(data, save_dir, args, timeout=300):
    """Both ranks as separate fairseq-train processes; returns rank 0's stdout."""
    port = free_port()
    procs = []
    try:
        for rank in (0, 1):
            cmd = [
                str(BIN / "fairseq-train"),
                str(data),
                "--user-dir",
                USER_DIR,
                "--save-dir",
                str(save_dir),
                *COMMON,
                *args,
                "--distributed-world-size",
                "2",
                "--distributed-rank",
                str(rank),
                "--distributed-backend",
                "gloo",
                "--distributed-init-method",
                f"tcp://127.0.0.1:{port}",
                "--distributed-no-spawn",
                "--ddp-backend",
                "legacy_ddp",
                "--device-id",
                "0",
            ]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{out[-3000:]}"
    return outputs[0]


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a, b):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-5, f"largest weight difference {worst:.2e}"


@pytest.mark.slow
# SKD runs in every case (SCHEDULE), its neighbour table refreshed every 2 updates in the word-KD
# and the adaptive-softmax cases; the online teacher runs in the TIE-KD case, which shares
# word-KD's teacher (each case costs three fairseq processes, most of it their start-up).
@pytest.mark.parametrize(
    "criterion",
    [
        ["--criterion", "label_smoothed_skd", "--skd-candidates", "predicted"],
        ["--criterion", "label_smoothed_word_kd", "--kd-teacher-cache", "CACHE", "--skd-neighbour-refresh", "2"],
        ["--criterion", "label_smoothed_self_kd", "--self-kd-teacher", "ema", "--self-kd-ema-decay", "0.5"],
        [
            "--criterion",
            "label_smoothed_tie_kd",
            "--kd-teacher-path",
            "TEACHER",
            "--tie-topk",
            "4",
            "--tie-iterations",
            "2",
        ],
        [
            "--criterion",
            "label_smoothed_skd",
            "--skd-candidates",
            "neighbours",
            "--skd-neighbour-refresh",
            "2",
            "--skd-gold-mass",
            "0.8",
            "--adaptive-softmax-cutoff",
            "300,600",
            "--label-smoothing",
            "0",
        ],
    ],
    ids=["skd-predicted", "word-kd-cached+skd", "self-kd-ema+skd", "tie-kd", "skd-adaptive-softmax"],
)
def test_two_ranks_train_like_one_process_with_update_freq_2(multi30k_bin, tmp_path, request, criterion):
    # Candidates among every token: the seen-target set of the default --skd-exclude-unseen grows
    # micro-batch by micro-batch, which one process and two ranks take in a different order.
    fixtures = {"TEACHER": "translation_teacher", "CACHE": "translation_teacher_cache"}
    args = [str(request.getfixturevalue(fixtures[a])) if a in fixtures else a for a in criterion]
    args += SCHEDULE + ["--skd-include-unseen"]
    data = multi30k_bin / "bin"
    single = run(
        [
            BIN / "fairseq-train",
            data,
            "--user-dir",
            USER_DIR,
            "--save-dir",
            tmp_path / "one",
            *COMMON,
            *args,
            "--update-freq",
            "2",
        ]
    ).stdout
    ranks = train_two_ranks(data, tmp_path / "two", args)
    assert_same_weights(tmp_path / "one" / "checkpoint_last.pt", tmp_path / "two" / "checkpoint_last.pt")
    logged = train_logs(ranks)
    assert [int(r["num_updates"]) for r in logged] == list(range(1, UPDATES + 1))
    for r in logged:
        # The logged alpha averages both ranks' values: equal to the schedule only if they agree.
        assert r["skd_alpha"] == pytest.approx(skd_alpha(int(r["num_updates"]) - 1, 0.6, 1, 3), abs=1e-4)
    assert [r["loss"] for r in logged] == pytest.approx([r["loss"] for r in train_logs(single)], abs=2e-3)


def seen_split_on_a_rank(rank, init, out):
    """One gloo rank: its own targets seen, then the split every rank must agree on."""
    from skd_fairseq.criterions.candidate_state import SeenTargets

    torch.distributed.init_process_group("gloo", init_method=init, world_size=2, rank=rank)
    try:
        seen = SeenTargets(vocab_size=12, padding_idx=1)
        seen.add(torch.tensor([5, 6, 1] if rank == 0 else [6, 9, 10]), num_updates=0)
        excluded, admissible, counts = seen.split(torch.tensor([0, 1, 2, 3]), lambda s: s.sum().unsqueeze(0), True)
        torch.save((excluded, admissible, counts, seen.seen.clone()), f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_the_default_exclusion_agrees_on_the_targets_seen_on_every_rank(tmp_path):
    """--skd-exclude-unseen (the default) with a neighbour table: at a refresh the ranks all-reduce
    their seen sets, so every rank searches among the same tokens and builds the same table."""
    import torch.multiprocessing as mp

    out = tmp_path / "split"
    mp.start_processes(
        seen_split_on_a_rank, args=(f"file://{tmp_path}/rendezvous", str(out)), nprocs=2, start_method="spawn"
    )
    results = [torch.load(f"{out}.{rank}") for rank in range(2)]
    for excluded, admissible, counts, _ in results:
        assert admissible.tolist() == [5, 6, 9, 10] and counts == [4]  # the union, padding never seen
        assert excluded.tolist() == [0, 1, 2, 3, 4, 7, 8, 11]
    assert results[0][3].nonzero().flatten().tolist() == [5, 6]  # each rank keeps its own set
