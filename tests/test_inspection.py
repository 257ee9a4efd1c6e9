"""skd-fairseq-inspect on a tiny checkpoint written by fairseq's own Trainer."""

import pytest
import torch

from skd_fairseq.inspection import mean_gold_q, mean_solved_tau, neighbour_similarities

from conftest import run, save_teacher, write_dictionary
from references import brute_force_neighbours, reference_gold_mass_temperature, reference_soft_targets


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


def test_inspect_command_on_a_tiny_checkpoint(tmp_path):
    checkpoint, model = save_teacher(tmp_path / "run", n_words=60)
    out = run(["skd-fairseq-inspect", checkpoint, "--words", "w3", "w10", "--gold-mass", "0.8", "--topk", "4",
               "--taus", "0.05", "0.2", "1", "--plot", tmp_path / "q.png"]).stdout
    assert "V = 64, D = 32, k = 4, cosine; 4 special/filler ids left out" in out
    row = next(line for line in out.splitlines() if line.startswith("| q_gold |"))
    gold_q = [float(x) for x in row.split("|")[2:-1]]
    assert len(gold_q) == 3 and gold_q[0] > gold_q[1] > gold_q[2] > 1 / 5  # colder q, more gold mass
    lines = [line for line in out.splitlines() if line.startswith(("w3 (", "w10 ("))]
    assert len(lines) == 2 and all("(q_gold 0.800, tau " in line and line.count(", w") == 3 for line in lines)
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"


def test_inspect_refuses_a_missing_or_mismatched_dictionary(tmp_path, capsys):
    from skd_fairseq.inspection import main

    checkpoint, _ = save_teacher(tmp_path / "run", n_words=60)
    write_dictionary(tmp_path / "other.txt", 100)
    for argv, code, message in (
        ([checkpoint, "--dict", str(tmp_path / "other.txt")], 2,
         "has 104 symbols but the checkpoint's output embedding has 64 rows"),
        ([checkpoint, "--words", "nonesuch"], "skd-fairseq-inspect: 'nonesuch' is not in the dictionary", None),
        ([checkpoint, "--gold-mass", "0.1"], 2, "gold mass must be in (1/(k+1), 1)"),
        ([str(tmp_path / "missing.pt")], 2, "missing.pt not found"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        if message is None:  # SystemExit("message"): the message is the exit value
            assert str(exit_info.value.code).startswith(code)
        else:
            assert exit_info.value.code == code and message in capsys.readouterr().err
