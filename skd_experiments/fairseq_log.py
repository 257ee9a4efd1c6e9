"""Reading fairseq-train's log: its progress records, in either --log-format.

fairseq's progress bar prints one record per log interval (``train_inner``), one per
epoch (``train``) and one per validation (tagged with the subset's name). ``--log-format
json`` (what scripts/train.sh asks for) prints each as a JSON object; ``simple`` (the format
of the run archives committed before it did) as text. This module is the project's one
reader of both: everything else asks it for records and never matches log lines itself.

  simple: ... | train_inner | epoch 001:     50 / 227 loss=9.1, ..., num_updates=50, ..., wall=31
          ... | train | epoch 001 | loss 8.9 | ... | num_updates 227 | ... | wall 130
          ... | valid | epoch 001 | valid on 'valid' subset | loss 7.1 | ... | ppl 137.2 | ...
  json:   ... | train_inner | {"epoch": 1, "update": 0.22, "loss": "9.1", ..., "wall": "31"}
          ... | train | {"epoch": 1, "train_loss": "8.9", ..., "train_wall": "130"}
          ... | valid | {"epoch": 1, "valid_loss": "7.1", ..., "valid_ppl": "137.2"}
"""

import json
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

SIMPLE_INNER = re.compile(r"\| train_inner \| epoch (\d+):\s+(\d+) / (\d+) (.*)$")
SIMPLE_EPOCH = re.compile(r"\| train \| epoch (\d+) \|(.*)$")
SIMPLE_VALID = re.compile(r"\| (\w+) \| epoch (\d+) \| valid on '([^']+)' subset \|(.*)$")
JSON_RECORD = re.compile(r"\| (\w+) \| (\{\".*\})\s*$")
# fairseq.trainer's line when a run resumes from a checkpoint, in both formats.
LOADED = re.compile(r"fairseq\.trainer \| Loaded checkpoint .* \(epoch \d+ @ (\d+) updates\)")
# The configuration fairseq prints at the start (a Python dict): the training limits.
LIMIT = re.compile(r"'(max_update|max_epoch)': (\d+)")


@dataclass
class Record:
    """One progress record: ``kind`` is "train_inner", "train" (an epoch's end) or "valid"."""

    kind: str
    epoch: int
    values: Dict[str, float] = field(default_factory=dict)  # metric -> value, without a tag prefix
    subset: Optional[str] = None  # the validated subset
    step: Optional[int] = None  # train_inner in the simple format: the update within the epoch
    epoch_steps: Optional[int] = None  # and the updates the epoch has

    def get(self, name, default=None):
        return self.values.get(name, default)


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _pairs(text, separator, assign):
    """{name: value} from "a=1, b=2" (train_inner) or "| a 1 | b 2" (epoch records)."""
    values = {}
    for part in text.split(separator):
        name, _, value = part.strip().partition(assign)
        if name and value:
            values[name] = _number(value.strip())
    return values


def parse_line(line) -> Optional[Record]:
    """The progress record a log line holds, or None."""
    if "| train_inner |" in line and (m := SIMPLE_INNER.search(line)):
        epoch, step, steps, rest = m.groups()
        return Record("train_inner", int(epoch), _pairs(rest, ",", "="), step=int(step), epoch_steps=int(steps))
    if "| train |" in line and (m := SIMPLE_EPOCH.search(line)):
        return Record("train", int(m.group(1)), _pairs(m.group(2), "|", " "))
    if "valid on '" in line and (m := SIMPLE_VALID.search(line)):
        return Record("valid", int(m.group(2)), _pairs(m.group(4), "|", " "), subset=m.group(3))
    if '{"' in line and (m := JSON_RECORD.search(line)):
        return _json_record(m.group(1), m.group(2))
    return None


def _json_record(tag, text):
    try:
        stats = json.loads(text)
    except json.JSONDecodeError:
        return None
    epoch = int(stats.pop("epoch", 0))
    if tag == "train_inner":
        return Record("train_inner", epoch, {k: _number(v) for k, v in stats.items()})
    prefix = tag + "_"
    if not stats or not all(k.startswith(prefix) for k in stats):
        return None  # not a progress bar's record
    values = {k[len(prefix) :]: _number(v) for k, v in stats.items()}
    if tag == "train":
        return Record("train", epoch, values)
    return Record("valid", epoch, values, subset=tag)


def records(lines: Iterable[str]) -> List[Record]:
    """The progress records of a log's lines, in order."""
    return [r for r in map(parse_line, lines) if r is not None]


def read_records(path) -> List[Record]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return records(f)


def resumed_at(line) -> Optional[int]:
    """The update a run resumed from when ``line`` says it loaded a checkpoint, else None."""
    m = LOADED.search(line)
    return int(m.group(1)) if m else None


def training_limits(line) -> Optional[Dict[str, int]]:
    """{"max_update": U, "max_epoch": E} from the configuration line fairseq prints first, else None."""
    if "'optimization'" not in line:
        return None
    limits = dict(LIMIT.findall(line))
    return {name: int(limits.get(name, 0)) for name in ("max_update", "max_epoch")}


def validation_records(lines, subset=None) -> List[Record]:
    """The validation records of ``subset`` (default: the first subset validated), in order."""
    valid = [r for r in records(lines) if r.kind == "valid"]
    subset = subset or (valid[0].subset if valid else None)
    return [r for r in valid if r.subset == subset]
