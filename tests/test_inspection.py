"""skd-fairseq-inspect on a tiny checkpoint written by fairseq's own Trainer."""

import numpy as np
import pytest
import torch
from conftest import run, save_teacher, write_dictionary
from references import brute_force_neighbours, reference_gold_mass_temperature, reference_soft_targets

from skd_fairseq.inspection import mean_gold_q, mean_solved_tau, neighbour_similarities


def test_vocabulary_means_equal_brute_force():
    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(40, 8, generator=g)
    exclude = [0, 1, 2, 3]
    neighbours, sims = neighbour_similarities(embeddings, 5, "cosine", exclude)
    assert torch.equal(neighbours, brute_force_neighbours(embeddings, torch.arange(40), 5, "cosine", exclude).indices)
    weights = torch.rand(40, generator=g).double()
    weights[exclude] = 0
    for tau in (0.2, 1.0):
        q = reference_soft_targets(embeddings, torch.arange(40), neighbours, "cosine", tau)[:, 0]
        want = float((q * weights).sum() / weights.sum())
        assert abs(mean_gold_q(sims, weights, [tau])[0] - want) < 1e-6
    taus = torch.tensor([reference_gold_mass_temperature(row, 0.7) for row in sims], dtype=torch.float64)
    want = float((taus * weights).sum() / weights.sum())
    assert abs(mean_solved_tau(sims, weights, [0.7])[0] - want) < 1e-3 * want


def write_targets(prefix, sentences):
    """fairseq's binarised (mmap) dataset PREFIX.bin/.idx of these id lists."""
    from fairseq.data.indexed_dataset import MMapIndexedDatasetBuilder

    builder = MMapIndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    for ids in sentences:
        builder.add_item(torch.tensor(ids, dtype=torch.int64))
    builder.finalize(f"{prefix}.idx")


@pytest.mark.slow
def test_inspect_command_on_a_tiny_checkpoint(tmp_path):
    checkpoint, model = save_teacher(tmp_path / "run", n_words=60)
    write_targets(tmp_path / "run" / "data" / "train.de-en.en", [[5, 6, 7, 2], [8, 9, 2]])
    out = run(
        [
            "skd-fairseq-inspect",
            checkpoint,
            "--words",
            "w3",
            "w10",
            "--gold-mass",
            "0.8",
            "--topk",
            "4",
            "--taus",
            "0.05",
            "0.2",
            "1",
            "--plot",
            tmp_path / "q.png",
        ]
    ).stdout
    assert "V = 64, D = 32, k = 4, cosine; 4 special/filler ids left out; weights: target-side counts in " in out
    row = next(line for line in out.splitlines() if line.startswith("| q_gold |"))
    gold_q = [float(x) for x in row.split("|")[2:-1]]
    assert len(gold_q) == 3 and gold_q[0] > gold_q[1] > gold_q[2] > 1 / 5  # colder q, more gold mass
    lines = [line for line in out.splitlines() if line.startswith(("w3 (", "w10 ("))]
    assert len(lines) == 2 and all("(q_gold 0.800, tau " in line and line.count(", w") == 3 for line in lines)
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_inspect_refuses_a_missing_or_mismatched_dictionary(tmp_path, capsys):
    from skd_fairseq.inspection import main

    checkpoint, _ = save_teacher(tmp_path / "run", n_words=60)
    write_dictionary(tmp_path / "other.txt", 100)
    # A pickle that is no checkpoint: torch's weights-only refusal advises weights_only=False,
    # which inspect must not pass on.
    torch.save({"module": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    for argv, code, message in (
        (
            [checkpoint, "--dict", str(tmp_path / "other.txt")],
            2,
            "has 104 symbols but the checkpoint's output embedding has 64 rows",
        ),
        (
            [checkpoint, "--dictionary-counts", "--words", "w3", "nonesuch"],
            1,
            "skd-fairseq-inspect: 'nonesuch' is not in the dictionary",
        ),
        ([checkpoint, "--gold-mass", "0.1"], 2, "gold mass must be in (1/(k+1), 1)"),
        ([str(tmp_path / "missing.pt")], 2, "missing.pt not found"),
        ([str(tmp_path / "other.txt")], "skd-fairseq-inspect: cannot read", None),
        ([str(tmp_path / "pickled.pt")], "skd-fairseq-inspect: cannot read", None),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        if message is None:  # SystemExit("message"): the message is the exit value
            assert str(exit_info.value.code).startswith(code) and "weights_only" not in str(exit_info.value.code)
        else:
            assert exit_info.value.code == code and message in capsys.readouterr().err


@pytest.mark.slow
def test_inspect_weights_by_the_target_side_and_refuses_a_joined_dictionarys_counts(tmp_path, capsys):
    from skd_fairseq.inspection import main

    checkpoint, model = save_teacher(tmp_path / "run", n_words=60)
    # de and en share one dictionary here (as with --joined-dictionary): its counts are not the targets'.
    with pytest.raises(SystemExit) as exit_info:
        main([checkpoint])
    assert "is a joined dictionary" in str(exit_info.value.code) and "--target-data" in str(exit_info.value.code)
    targets = [[5, 5, 5, 9, 2], [9, 12, 2]]
    write_targets(tmp_path / "targets", targets)
    main([checkpoint, "--target-data", str(tmp_path / "targets"), "--taus", "0.5", "--gold-masses"])
    out = capsys.readouterr().out
    gold_q = float(next(line for line in out.splitlines() if line.startswith("| q_gold |")).split("|")[2])
    embeddings = model.decoder.output_projection.weight.detach().float()
    _, sims = neighbour_similarities(embeddings, 8, "cosine", [0, 1, 2, 3])
    weights = torch.zeros(64, dtype=torch.float64)
    for ids in targets:
        for i in ids:
            weights[i] += i != 2  # eos is a special symbol: left out
    assert gold_q == pytest.approx(mean_gold_q(sims, weights, [0.5])[0], abs=1e-3)


@pytest.mark.slow
def test_inspect_lists_neighbours_at_the_checkpoints_own_setting(tmp_path, capsys):
    from skd_fairseq.inspection import main

    skd = ["--criterion", "label_smoothed_skd", "--label-smoothing", "0.1", "--skd-topk", "3", "--skd-gold-mass", "0.6"]
    checkpoint, _ = save_teacher(tmp_path / "run", criterion_args=skd)
    main([checkpoint, "--dictionary-counts", "--words", "w3", "--gold-masses"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("w3 ("))
    assert "k = 3, cosine" in out and "Neighbours and q at rho 0.6" in out and "(q_gold 0.600, tau " in line
    main([checkpoint, "--dictionary-counts", "--words", "w3", "--temperature", "1", "--gold-masses"])
    assert "Neighbours and q at tau 1 " in capsys.readouterr().out
