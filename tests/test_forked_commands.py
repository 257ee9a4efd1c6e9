"""The tests' forked commands (tests/forked_commands.py) behave as the processes they replace."""

import forked_commands
import pytest
import torch
from conftest import BIN, run, tool
from forked_commands import target_of
from test_fairseq_commands import SKD, TRANSLATION_MODEL, train, train_logs

# The tests that compare a forked command with a process: without forks they would compare two processes.
forks = pytest.mark.skipif(
    not forked_commands.ENABLED or forked_commands.several_threads(),
    reason="SKD_TEST_FORK=0, or a worker with several torch threads (run scripts/test.sh): nothing forks",
)


@pytest.mark.skipif(not forked_commands.ENABLED, reason="SKD_TEST_FORK=0: every command runs as a process")
def test_only_the_projects_and_fairseqs_python_commands_are_forked(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # as scripts/test.sh runs the workers
    command = [str(BIN / "fairseq-train"), "data", "--user-dir", "skd_fairseq"]
    assert target_of(command, BIN)[1].value == "fairseq_cli.train:cli_main"
    assert target_of(command[:2], BIN) is None  # the fork would know the plugin's criteria without --user-dir
    assert target_of([str(BIN / "skd-fairseq-cut-run"), "run"], BIN)[0] == "entry"
    assert target_of([*tool("cut_run"), "run"], BIN) == ("module", "skd_experiments.cut_run")
    assert target_of(["bash", "scripts/train.sh"], BIN) is None
    assert target_of([str(BIN / "skd-fairseq-user-dir")], BIN) is None  # a script, not an entry point
    assert target_of([*command, "--distributed-world-size", "2"], BIN) is None
    # A worker with several torch threads forks nothing: the OpenMP pool would hang the child.
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert target_of(command, BIN) is None and target_of([*tool("cut_run"), "run"], BIN) is None


@pytest.mark.slow
@forks
def test_a_forked_command_gives_the_status_and_output_of_a_process(multi30k_bin, tmp_path):
    # A flag error of the plugin: fairseq's logging, the traceback and the exit status.
    flags = [*TRANSLATION_MODEL, "--criterion", "label_smoothed_skd", "--label-smoothing", "0.1"]
    flags += ["--skd-topk", "5000", "--max-update", "1"]
    forked = train(multi30k_bin / "bin", tmp_path / "a", *flags, check=False)
    process = train(multi30k_bin / "bin", tmp_path / "b", *flags, check=False, fork=False)
    assert forked.returncode == process.returncode == 1
    assert forked.stderr.splitlines()[-1] == process.stderr.splitlines()[-1]
    assert "--skd-topk: k=5000 is out of range" in forked.stderr.splitlines()[-1]
    assert "| INFO | fairseq_cli.train |" in forked.stdout and "| INFO | fairseq_cli.train |" in process.stdout
    # A tool's own message (sys.exit with a text) and its status, through python -m and a console script.
    for command in (  # both forked (target_of names them), then run as processes
        [*tool("choose_epochs"), tmp_path / "none.log"],
        [BIN / "skd-fairseq-choose-epochs", tmp_path / "none.log"],
    ):
        assert target_of([str(arg) for arg in command], BIN) is not None
        forked, process = run(command, check=False), run(command, check=False, fork=False)
        assert (forked.returncode, forked.stdout, forked.stderr) == (process.returncode, process.stdout, process.stderr)
        assert forked.returncode == 1 and "cannot read" in forked.stderr and "No such file" in forked.stderr


@pytest.mark.slow
@forks
def test_a_forked_training_run_logs_the_losses_of_a_process(multi30k_bin, tmp_path):
    """Nothing of the test worker's state (random state, default dtype, registries) reaches a
    forked run's numbers: 3 updates of SKD log the same losses forked and as a process."""
    flags = [*TRANSLATION_MODEL, *SKD, "--skd-candidates", "random", "--max-update", "3"]
    torch.manual_seed(1234)  # a worker state unlike a fresh interpreter's
    forked = train_logs(train(multi30k_bin / "bin", tmp_path / "a", *flags).stdout)
    process = train_logs(train(multi30k_bin / "bin", tmp_path / "b", *flags, fork=False).stdout)
    assert len(forked) == 3 and [r["loss"] for r in forked] == [r["loss"] for r in process]
    assert [r["nll_loss"] for r in forked] == [r["nll_loss"] for r in process]
