"""The report of benchmarks/gpu-check.sh: its steps' statuses and their own reports, in one file.

  python -m skd_experiments.gpu_check_report OUT SMOKE "NAME STATUS SECONDS" ...

Writes OUT/gpu-check.json and OUT/gpu-check.md (each step's status and time, then the Markdown
report the step wrote to OUT/NAME.md, if any), prints the summary, and exits 1 when a step failed.
"""

import json
import os
import platform
import sys

import torch

from skd_experiments.markdown import markdown_table


def step_entry(out, entry):
    name, status, seconds = entry.split()
    step = {"name": name, "status": "passed" if status == "0" else f"failed ({status})", "seconds": int(seconds)}
    for ext in ("json", "md"):
        if os.path.exists(os.path.join(out, f"{name}.{ext}")):
            step[ext] = f"{name}.{ext}"
    if "json" in step:
        with open(os.path.join(out, step["json"])) as f:
            step["targets"] = json.load(f).get("targets", [])
    return step


def main(argv=None):
    out, smoke, *entries = argv if argv is not None else sys.argv[1:]
    smoke = smoke == "1"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    steps = [step_entry(out, entry) for entry in entries]
    report = {"device": device, "smoke": smoke, "torch": torch.__version__, "steps": steps}
    lines = [f"# GPU check{' (smoke, CPU)' if smoke else ''}", "", f"Device: {device}, torch {torch.__version__}.", ""]
    lines += markdown_table(
        ["step", "status", "seconds"], [[s["name"], s["status"], s["seconds"]] for s in steps], align="llr"
    )
    for step in steps:
        if "md" in step:
            with open(os.path.join(out, step["md"])) as f:
                lines += ["", f"## {step['name']}", "", f.read().strip()]
    with open(os.path.join(out, "gpu-check.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "gpu-check.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[: 6 + len(steps)]))
    sys.exit(0 if all(s["status"] == "passed" for s in steps) else 1)


if __name__ == "__main__":
    main()
