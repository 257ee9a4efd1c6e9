"""Writing a benchmark's report: the JSON in full, the Markdown summary to a file or stdout."""

import json
import os
import sys
import time

from skd_experiments.run_and_measure import git_commit


def commit():
    """The commit of this checkout (one definition of "the commit", as the training runs record it)."""
    return git_commit(os.path.dirname(os.path.abspath(__file__))) or "unknown"


def today():
    """The UTC date a report is stamped with."""
    return time.strftime("%Y-%m-%d", time.gmtime())


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
