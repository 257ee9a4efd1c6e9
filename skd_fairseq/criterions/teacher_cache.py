"""A teacher's top-K outputs over a binarised split, stored once and read instead of the teacher.

``skd-fairseq-cache-teacher`` (:mod:`skd_fairseq.cache_teacher`) writes a directory:

* ``manifest.json``: the format, the teacher checkpoints and their sha256, the dictionaries'
  sha256, the task and what decides its samples (languages; for language modelling the block
  layout), the split, its sentences and target tokens, K, the storage dtype and the temperature;
* ``SPLIT.topk-ids.{bin,idx}`` and ``SPLIT.topk-lprobs.{bin,idx}``: fairseq's mmap indexed
  datasets, item i = sample i of the split, its target positions' K token ids and
  log-probabilities (most probable first), flattened [L_i * K]. fairseq's indexed datasets hold
  integers only, so the log-probabilities are stored as the bits of IEEE floats (float32 in
  int32, float16 in int16) and viewed back as floats after reading. float32 loses nothing:
  fairseq computes a model's log-probabilities in float32 whatever the model's dtype.

The KD criteria (``--kd-teacher-cache DIR``) check the cache against their task when they are
built and against the training split when fairseq loads it (:func:`attach_teacher_cache`), so a
cache of other data fails before any step; the split's collater then adds each batch's
cached rows to the sample (``sample["teacher_cache"]``), which fairseq moves to the device with
the rest of the batch: a step reads them without a host-device copy of its own.
"""

import hashlib
import itertools
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset, indexed_dataset

from .teacher import registered_task_name

FORMAT = "skd-fairseq teacher cache 1"
MANIFEST = "manifest.json"
REQUIRED_KEYS = (
    "split",
    "topk",
    "dtype",
    "temperature",
    "teachers",
    "files",
    "sentences",
    "target_tokens",
    "task",
    "dictionaries",
    "layout",
)
# Storage dtype -> (float dtype, integer dtype of the same width that holds its bits).
FLOAT_BITS = {
    "float32": (torch.float32, torch.int32),
    "float16": (torch.float16, torch.int16),
}
# The options of a language-modelling task that decide its samples (blocks) and their targets.
LM_LAYOUT = (
    "tokens_per_sample",
    "sample_break_mode",
    "add_bos_token",
    "self_target",
    "future_target",
    "past_target",
    "shorten_method",
    "shorten_data_split_list",
)
TRANSLATION_LAYOUT = ("source_lang", "target_lang", "left_pad_target", "truncate_source")


def dictionary_sha256(dictionary) -> str:
    """sha256 of a fairseq dictionary's symbols in id order (what the ids mean)."""
    return hashlib.sha256("\n".join(dictionary.symbols).encode("utf-8")).hexdigest()


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def task_description(task) -> Dict[str, object]:
    """What a cache must share with the task that reads it: the task, its dictionaries and the
    options that decide its samples and their target positions."""
    name = registered_task_name(task)
    cfg = _task_cfg(task)
    if name == "language_modeling":
        dictionaries = {"target": dictionary_sha256(task.target_dictionary)}
        layout_keys = LM_LAYOUT
    else:
        dictionaries = {
            "source": dictionary_sha256(task.source_dictionary),
            "target": dictionary_sha256(task.target_dictionary),
        }
        layout_keys = TRANSLATION_LAYOUT
    layout = {key: _plain(getattr(cfg, key, None)) for key in layout_keys}
    return {"task": name, "dictionaries": dictionaries, "layout": layout}


def _task_cfg(task):
    return getattr(task, "cfg", None) or getattr(task, "args", None)


def check_cacheable(task, split: str, flag: str) -> None:
    """Refuse the settings under which a split's samples are not the same in every run: several
    data directories (fairseq reads another one each epoch), a random crop seeded by --seed, or
    padding rows added to language-model batches."""
    cfg = _task_cfg(task)
    data = str(getattr(cfg, "data", "") or "")
    if len(data.split(os.pathsep)) > 1:
        raise ValueError(
            f"{flag}: DATA '{data}' names several directories, which fairseq reads one per epoch; a "
            "teacher cache covers one: train on one directory (shards in it, train, train1, ..., are fine)"
        )
    shorten, splits = getattr(cfg, "shorten_method", None), getattr(cfg, "shorten_data_split_list", "") or ""
    if str(shorten) == "random_crop" and (split in splits.split(",") or not splits):
        raise ValueError(
            f"{flag}: --shorten-method random_crop crops split '{split}' at random (seeded by --seed), so "
            "no two runs see the same samples; use --shorten-method truncate, or leave the split out of "
            "--shorten-data-split-list"
        )
    if getattr(cfg, "pad_to_fixed_bsz", False):
        raise ValueError(f"{flag}: --pad-to-fixed-bsz adds padding samples to batches, which a cache has no rows for")


def split_data_files(task, split: str) -> List[str]:
    """The binarised files a split is read from (its shards split, split1, ... as fairseq combines
    them), or [] where they are not found (raw-text formats)."""
    cfg = _task_cfg(task)
    data = str(cfg.data).split(os.pathsep)[0]
    source, target = getattr(cfg, "source_lang", None), getattr(cfg, "target_lang", None)
    files = []
    for k in itertools.count():
        name = split + (str(k) if k > 0 else "")
        if source and target:
            shard = []
            for pair in (f"{source}-{target}", f"{target}-{source}"):
                found = [os.path.join(data, f"{name}.{pair}.{lang}.bin") for lang in (source, target)]
                if all(os.path.isfile(f) for f in found):
                    shard = found
                    break
        else:
            shard = [f for f in [os.path.join(data, f"{name}.bin")] if os.path.isfile(f)]
        if not shard:
            return files
        files += shard


def data_sha256(files: List[str]) -> Optional[str]:
    """sha256 of the files' names and contents (None for no files): the split's tokens."""
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.basename(path).encode("utf-8") + b"\0")
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()


def _plain(value):
    """A config value as JSON keeps it (enums by their name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def target_sizes(dataset) -> Optional[np.ndarray]:
    """The target length of every sample, where the dataset states it without reading samples:
    a translation pair's target sizes, or a language model's block sizes."""
    sizes = getattr(dataset, "tgt_sizes", None)
    if sizes is None and type(dataset).__name__ == "MonolingualDataset":
        sizes = dataset.sizes
    return None if sizes is None else np.asarray(sizes, dtype=np.int64)


def target_positions(target: torch.Tensor, pad: int) -> torch.Tensor:
    """[B] the number of target positions of each row, which must be a prefix of the row
    (right padding, as fairseq's translation and language-modelling collaters pad targets)."""
    real = target.ne(pad)
    lengths = real.sum(dim=1)
    prefix = torch.arange(target.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    if not torch.equal(real, prefix):
        raise ValueError(
            "a teacher cache needs right-padded targets (no padding before a target token); "
            "train without --left-pad-target"
        )
    return lengths


def _prefix(directory: str, split: str, part: str) -> str:
    return os.path.join(directory, f"{split}.topk-{part}")


class TeacherCacheWriter:
    """Writes a split's cached rows in sample order, then the manifest."""

    def __init__(self, directory: str, split: str, topk: int, dtype: str, vocab_size: int):
        if dtype not in FLOAT_BITS:
            raise ValueError(f"dtype must be one of {', '.join(FLOAT_BITS)}, got '{dtype}'")
        os.makedirs(directory, exist_ok=True)
        self.directory, self.split, self.topk, self.dtype = directory, split, topk, dtype
        self.float_dtype, self.bits_dtype = FLOAT_BITS[dtype]
        id_dtype = indexed_dataset.best_fitting_int_dtype(vocab_size)
        self._ids = indexed_dataset.MMapIndexedDatasetBuilder(_prefix(directory, split, "ids") + ".bin", id_dtype)
        bits = {torch.int16: np.int16, torch.int32: np.int32}[self.bits_dtype]
        self._lprobs = indexed_dataset.MMapIndexedDatasetBuilder(_prefix(directory, split, "lprobs") + ".bin", bits)
        self.sentences = self.tokens = 0
        self.kept_mass = 0.0

    def add(self, ids: torch.Tensor, lprobs: torch.Tensor) -> None:
        """One sample's rows: ids and log-probabilities [L, K] (L target positions)."""
        if ids.shape != lprobs.shape or ids.dim() != 2 or ids.size(1) != self.topk:
            raise ValueError(f"expected ids and lprobs of shape [L, {self.topk}], got {ids.shape} and {lprobs.shape}")
        stored = lprobs.detach().to("cpu", self.float_dtype).contiguous()
        self._ids.add_item(ids.detach().cpu().reshape(-1))
        self._lprobs.add_item(stored.view(self.bits_dtype).reshape(-1))
        self.sentences += 1
        self.tokens += ids.size(0)
        self.kept_mass += float(stored.double().exp().sum())

    def finalize(self, manifest: Dict[str, object]) -> Dict[str, object]:
        """Close the files and write ``manifest.json``: ``manifest`` plus the counts and files."""
        for builder, part in ((self._ids, "ids"), (self._lprobs, "lprobs")):
            builder.finalize(_prefix(self.directory, self.split, part) + ".idx")
        files = {part: os.path.basename(_prefix(self.directory, self.split, part)) for part in ("ids", "lprobs")}
        size = sum(
            os.path.getsize(_prefix(self.directory, self.split, part) + ext)
            for part in files
            for ext in (".bin", ".idx")
        )
        manifest = dict(
            manifest,
            format=FORMAT,
            split=self.split,
            sentences=self.sentences,
            target_tokens=self.tokens,
            topk=self.topk,
            dtype=self.dtype,
            files=files,
            bytes=size,
            bytes_per_target_token=round(size / max(self.tokens, 1), 2),
            mean_topk_mass=round(self.kept_mass / max(self.tokens, 1), 6),
        )
        with open(os.path.join(self.directory, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
        return manifest


class TeacherCache:
    """A cache directory, read and checked: the manifest, then both indexed datasets."""

    def __init__(self, directory: str, flag: str = "--kd-teacher-cache"):
        self.directory, self.flag = directory, flag
        rebuild = "build it with skd-fairseq-cache-teacher"
        path = os.path.join(directory, MANIFEST)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{flag}: no {MANIFEST} in '{directory}'; {rebuild}")
        try:
            with open(path) as f:
                self.manifest = json.load(f)
        except ValueError as err:
            raise ValueError(f"{flag}: {path} is not valid JSON ({err}); {rebuild} again") from err
        if self.manifest.get("format") != FORMAT:
            raise ValueError(
                f"{flag}: {path} is not a teacher cache of this version (format "
                f"{self.manifest.get('format')!r}, expected {FORMAT!r}); {rebuild} again"
            )
        m = self.manifest
        missing = [key for key in REQUIRED_KEYS if key not in m]
        if missing:
            raise ValueError(f"{flag}: {path} lacks {', '.join(missing)}; {rebuild} again")
        self.split, self.topk, self.dtype = m["split"], int(m["topk"]), m["dtype"]
        if self.dtype not in FLOAT_BITS:
            raise ValueError(
                f"{flag}: {path} stores dtype {self.dtype!r}, not one of {', '.join(FLOAT_BITS)}; {rebuild} again"
            )
        self.temperature = float(m["temperature"])
        self.teachers: List[Dict[str, str]] = m["teachers"]
        self.float_dtype, _ = FLOAT_BITS[self.dtype]
        self.ids = self._open("ids", rebuild)
        self.lprobs = self._open("lprobs", rebuild)

    def _open(self, part: str, rebuild: str):
        prefix = os.path.join(self.directory, self.manifest["files"][part])
        for ext in (".idx", ".bin"):
            if not os.path.isfile(prefix + ext):
                raise FileNotFoundError(f"{self.flag}: the cache file {prefix}{ext} is missing; {rebuild} again")
        try:
            dataset = indexed_dataset.MMapIndexedDataset(prefix)
            sizes = dataset.sizes
        except Exception as err:
            raise ValueError(f"{self.flag}: cannot read {prefix}.idx ({err}); {rebuild} again") from err
        expected = self.manifest["target_tokens"] * self.topk
        itemsize = np.dtype(dataset._index.dtype).itemsize
        on_disk = os.path.getsize(prefix + ".bin")
        if len(sizes) != self.manifest["sentences"] or int(sizes.sum()) != expected or on_disk != expected * itemsize:
            raise ValueError(
                f"{self.flag}: {prefix} is truncated or not this cache's: it holds {len(sizes)} samples, "
                f"{int(sizes.sum())} values and {on_disk} bytes; the manifest says "
                f"{self.manifest['sentences']} samples and {expected} values ({expected * itemsize} bytes); "
                f"{rebuild} again"
            )
        return dataset

    @property
    def ensemble(self) -> bool:
        return len(self.teachers) > 1

    def check_task(self, task) -> None:
        """The task must be the cache's: same task, dictionaries and sample layout."""
        ours, theirs = self.manifest, task_description(task)
        fix = f"build a cache for this data and task with skd-fairseq-cache-teacher (this one: {self.directory})"
        if ours["task"] != theirs["task"]:
            raise ValueError(
                f"{self.flag}: the cache was built for --task {ours['task']}, training runs "
                f"--task {theirs['task']}; {fix}"
            )
        for role, digest in theirs["dictionaries"].items():
            if ours["dictionaries"].get(role) != digest:
                raise ValueError(
                    f"{self.flag}: the cache was built with another {role} dictionary than the training "
                    f"data's (sha256 {str(ours['dictionaries'].get(role))[:12]}… against {digest[:12]}…): its "
                    f"token ids mean other words; {fix}"
                )
        for key, value in theirs["layout"].items():
            if ours["layout"].get(key) != value:
                option = "--" + key.replace("_", "-")
                raise ValueError(
                    f"{self.flag}: the cache was built with {option} {ours['layout'].get(key)}, training "
                    f"uses {option} {value}, so samples and their target positions differ; {fix}"
                )

    def check_split(self, task, split: str) -> None:
        """Training reads the cache's split, and that split holds the tokens it was built from
        (their sha256: a changed source or target with the same lengths is caught here)."""
        if split != self.split:
            raise ValueError(
                f"{self.flag}: the cache holds split '{self.split}', training reads --train-subset "
                f"'{split}'; build the cache with --subset {split}"
            )
        check_cacheable(task, split, self.flag)
        files = split_data_files(task, split)
        digest, cached = data_sha256(files), self.manifest.get("data_sha256")
        if digest and cached and digest != cached:
            raise ValueError(
                f"{self.flag}: split '{split}' of the training data ({', '.join(files)}) is not the data the "
                f"cache was built from ({self.manifest.get('data')}; compared by sha256 of its files): build "
                "the cache from this data"
            )

    def check_topk(self, k: int, flag: str) -> None:
        if k > self.topk:
            raise ValueError(
                f"{flag} {k}: the cache keeps the teacher's top {self.topk} tokens only; give at most "
                f"{self.topk}, or build a cache with --topk {k}"
            )

    def check_temperature(self, temperature: float) -> None:
        """One teacher's cache serves any temperature; an ensemble's only its own."""
        if self.ensemble and temperature != self.temperature:
            raise ValueError(
                f"--kd-temperature {temperature}: the cache averages an ensemble of {len(self.teachers)} "
                f"teachers at temperature {self.temperature}, which no other temperature can be computed "
                f"from; use --kd-temperature {self.temperature}, or build the cache with --temperature {temperature}"
            )

    def check_teachers(self, paths: List[str], flag: str) -> None:
        """The checkpoints given beside the cache must be the ones it was built from."""
        given = sorted(file_sha256(path) for path in paths)
        cached = sorted(teacher["sha256"] for teacher in self.teachers)
        if given != cached:
            names = ", ".join(teacher["path"] for teacher in self.teachers)
            raise ValueError(
                f"{flag}: the checkpoints given ({':'.join(paths)}) are not the teacher(s) the cache "
                f"{self.directory} was built from ({names}; compared by sha256); give those, or rebuild the cache"
            )

    def check_dataset(self, dataset) -> None:
        """The split's samples must be the cache's: their number and each target's length."""
        fix = f"build the cache from this data (skd-fairseq-cache-teacher --subset {self.split})"
        if len(dataset) != self.manifest["sentences"]:
            raise ValueError(
                f"{self.flag}: the training split '{self.split}' has {len(dataset)} samples, the cache "
                f"{self.manifest['sentences']}: it was built from other data; {fix}"
            )
        sizes = target_sizes(dataset)
        if sizes is None:
            return  # each batch's lengths are still checked as it is collated
        cached = self.ids.sizes // self.topk
        offset = int(self.manifest.get("target_offset", 0))
        differ = np.flatnonzero(cached != sizes + offset)
        if len(differ):
            i = int(differ[0])
            raise ValueError(
                f"{self.flag}: sample {i} of the training split has {int(sizes[i]) + offset} target positions, "
                f"the cache {int(cached[i])} ({len(differ)} samples differ): it was built from other data; {fix}"
            )

    def collate(self, sample_ids: torch.Tensor, target: torch.Tensor, pad: int) -> Dict[str, torch.Tensor]:
        """A batch's cached rows, aligned with its ``target`` [B, T]: ``ids`` [B, T, K] (padding id
        where there is no position) and ``lprobs`` [B, T, K], the stored float bits (an integer
        tensor, so fairseq's --fp16/--bf16 casting of float inputs leaves them alone)."""
        lengths = target_positions(target, pad)
        rows = sample_ids.tolist()  # a CPU tensor here: the data loader collates on the host
        ids = [self.ids[i] for i in rows]
        cached = torch.tensor([len(x) // self.topk for x in ids])
        if not torch.equal(cached, lengths):
            b = int((cached != lengths).nonzero()[0, 0])
            raise ValueError(
                f"{self.flag}: sample {rows[b]} has {int(lengths[b])} target positions, the cache "
                f"{int(cached[b])}: it was built from other data; build the cache from this data"
            )
        _, bits_dtype = FLOAT_BITS[self.dtype]
        batch, width = target.shape
        out_ids = torch.full((batch, width, self.topk), pad, dtype=torch.long)
        out_bits = torch.zeros((batch, width, self.topk), dtype=bits_dtype)
        mask = target.ne(pad)
        if ids:
            out_ids[mask] = torch.cat(ids).view(-1, self.topk)
            # fairseq's reader widens every integer to int64; narrowing back keeps the bits.
            out_bits[mask] = torch.cat([self.lprobs[i] for i in rows]).to(bits_dtype).view(-1, self.topk)
        return {"ids": out_ids, "lprobs": out_bits}


def cached_rows(sample, cache_dtype: str, ignore_prefix_size: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(stored log-probabilities, ids), each [N, K], flattened like the criterion's target."""
    rows = sample.get("teacher_cache")
    if rows is None:
        raise ValueError(
            "--kd-teacher-cache: this training batch carries no cached teacher outputs; the "
            "training split was not loaded through the cache (see attach_teacher_cache)"
        )
    ids, bits = rows["ids"], rows["lprobs"]
    if ignore_prefix_size > 0:
        ids, bits = ids[:, ignore_prefix_size:], bits[:, ignore_prefix_size:]
    k = ids.size(-1)
    float_dtype, _ = FLOAT_BITS[cache_dtype]
    return bits.contiguous().view(float_dtype).reshape(-1, k), ids.reshape(-1, k)


class TeacherCacheDataset(BaseWrapperDataset):
    """A split whose batches carry their cached teacher rows (``sample["teacher_cache"]``)."""

    def __init__(self, dataset, cache: TeacherCache, pad: int):
        super().__init__(dataset)
        self.cache, self.pad = cache, pad

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if batch and "target" in batch and batch["target"] is not None:
            batch["teacher_cache"] = self.cache.collate(batch["id"], batch["target"], self.pad)
        return batch


def attach_teacher_cache(task, cache: TeacherCache, pad: int) -> None:
    """Make the task's split ``cache.split`` carry the cache, checked against it when it is
    loaded (now, when it already is; fairseq-train loads the training split after building the
    criterion, before the first step). The task keeps the latest cache attached to it."""

    def wrap(dataset):
        if isinstance(dataset, TeacherCacheDataset):
            dataset = dataset.dataset
        cache.check_dataset(dataset)
        return TeacherCacheDataset(dataset, cache, pad)

    load_dataset = task.load_dataset
    attached = getattr(load_dataset, "teacher_cache_wrap", None)
    if attached is not None:
        attached[cache.split] = wrap
    else:
        attached = {cache.split: wrap}

        def loading_with_cache(split, *args, **kwargs):
            result = load_dataset(split, *args, **kwargs)
            if split in attached and split in task.datasets:
                task.datasets[split] = attached[split](task.datasets[split])
            return result

        loading_with_cache.teacher_cache_wrap = attached
        task.load_dataset = loading_with_cache
    if cache.split in task.datasets:
        task.datasets[cache.split] = wrap(task.datasets[cache.split])
