"""Run the project's Python commands in a fork of the test worker rather than a new interpreter.

Importing torch and fairseq costs a new process several seconds on these machines (scikit-learn
and scipy.stats alone, which ve-fairseq's task registry imports, take a third of it), more than
the tiny training runs of the command tests themselves. A test worker has imported them already:
a forked child starts with them loaded and still runs the command in a process of its own, with
its own stdout and stderr file descriptors, exit status, working directory, global state and
random state (each command seeds itself). The shell scripts' tests still start every command as
a real process, so the console scripts and `python -m` entry points stay covered end to end.

Only commands that would run with the test's own environment are forked: a test that passes its
own ``env`` (a PATH, a thread count read when torch loads) gets a real process, and so does a
fairseq command without ``--user-dir`` (the fork knows the plugin's criteria) and a distributed
run (torch starts its ranks with the spawn method, whose children re-read the parent's
``__main__``, which a forked test worker does not have). Nothing is forked from a worker whose
torch runs more than one thread (pytest without scripts/test.sh's OMP_NUM_THREADS=1): GNU
OpenMP's thread pool does not survive a fork, and the child's first parallel operation hangs."""

import importlib
import importlib.metadata
import logging
import os
import runpy
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

# The distributions whose console scripts run in a fork: fairseq's commands and the project's tools.
FORKED_DISTRIBUTIONS = {"ve-fairseq", "skd-fairseq"}
# Arguments that start several processes.
DISTRIBUTED_FLAGS = ("--distributed-world-size", "--nprocs-per-node")
# SKD_TEST_FORK=0 runs every command as a new process (to rule the forks out when a test fails).
ENABLED = os.environ.get("SKD_TEST_FORK", "1") != "0"


def console_entry_points():
    return {
        entry.name: entry
        for entry in importlib.metadata.entry_points(group="console_scripts")
        if entry.dist is not None and entry.dist.metadata["Name"] in FORKED_DISTRIBUTIONS
    }


ENTRY_POINTS = console_entry_points()


def several_threads():
    """Whether this worker's torch may have started an OpenMP thread pool, which a forked child
    would inherit broken (measured here: a matrix product in the child never returns)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.get_num_threads() > 1


def target_of(cmd, bin_dir):
    """What a fork would call for CMD (a list of strings): ("entry", EntryPoint) for a console
    script of bin_dir, ("module", NAME) for `sys.executable -m NAME`, or None: run it as a process."""
    if not ENABLED or several_threads() or any(arg.split("=")[0] in DISTRIBUTED_FLAGS for arg in cmd):
        return None
    head = cmd[0]
    if os.path.dirname(head) == str(bin_dir) and os.path.basename(head) in ENTRY_POINTS:
        entry = ENTRY_POINTS[os.path.basename(head)]
        # The fork has the plugin's criteria registered: a fairseq command without --user-dir, which
        # would not know them, runs as a process.
        if entry.value.startswith("fairseq_cli.") and "--user-dir" not in cmd:
            return None
        return "entry", entry
    if head == sys.executable and len(cmd) > 2 and cmd[1] == "-m" and cmd[2].startswith("skd_"):
        return "module", cmd[2]
    return None


def run_forked(cmd, target, timeout, environ, cwd=None, input=None):
    """Run CMD's TARGET (from target_of) in a forked child with the environment variables ENVIRON,
    as subprocess.run(cmd, capture_output=True, text=True, env=environ) would run CMD: a
    CompletedProcess, or TimeoutExpired."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as stdin:
        if input is not None:
            stdin.write(input.encode())
            stdin.seek(0)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into the test
            status = 1
            try:
                status = child(cmd, target, environ, cwd, stdin.fileno() if input is not None else None, out, err)
            finally:
                os._exit(status)
        status = wait(pid, timeout, cmd)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            cmd, status, out.read().decode(errors="replace"), err.read().decode(errors="replace")
        )


def wait(pid, timeout, cmd):
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise subprocess.TimeoutExpired(cmd, timeout)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def child(cmd, target, environ, cwd, stdin_fd, out, err):
    """In the child: the descriptors, streams, logging and warnings a new process would have,
    then the command; its exit status as the interpreter would give it."""
    os.dup2(stdin_fd if stdin_fd is not None else os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.environ.clear()  # what the commands this one starts see (those read when torch loads are set)
    os.environ.update(environ)
    if cwd is not None:
        os.chdir(cwd)
    reset_logging()
    warnings.resetwarnings()
    warnings.simplefilter("ignore")  # run() gives its processes PYTHONWARNINGS=ignore
    try:
        status = call(cmd, target)
    except SystemExit as end:
        status = exit_status(end)
    except BaseException as error:
        traceback.print_exception(type(error), error, own_frames(error.__traceback__))
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def call(cmd, target):
    kind, what = target
    if kind == "module":
        sys.argv = [cmd[2], *cmd[3:]]
        runpy.run_module(what, run_name="__main__", alter_sys=True)
        return 0
    sys.argv = [cmd[0], *cmd[1:]]
    module_name = what.module
    # fairseq's command modules configure logging (basicConfig to sys.stdout) when imported:
    # import them afresh, as a new process would, so that they log to the child's stdout.
    sys.modules.pop(module_name, None)
    function = getattr(importlib.import_module(module_name), what.attr)
    result = function()
    return exit_status(SystemExit(result))


def own_frames(tb):
    """A traceback from the command's own frames on, as the interpreter would print it."""
    while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, "<frozen runpy>"):
        tb = tb.tb_next
    return tb


def exit_status(end):
    """The status the interpreter exits with for a SystemExit (a message is printed, status 1)."""
    if end.code is None:
        return 0
    if isinstance(end.code, int):
        return end.code
    print(end.code, file=sys.stderr)
    return 1


def reset_logging():
    """The root logger as a new interpreter has it: no handlers (pytest's capture handlers are the
    parent's), level WARNING, nothing disabled."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    logging.disable(logging.NOTSET)
