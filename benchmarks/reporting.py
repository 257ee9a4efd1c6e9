"""Writing a benchmark's report: the JSON in full, the Markdown summary to a file or stdout."""

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from run_and_measure import git_commit  # noqa: E402  (one definition of "the commit")


def commit():
    return git_commit(REPO) or "unknown"


def write_outputs(report, json_path=None, markdown_path=None, markdown_text=""):
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1)
    if markdown_path == "-":
        sys.stdout.write(markdown_text)
    elif markdown_path:
        with open(markdown_path, "w") as f:
            f.write(markdown_text)
