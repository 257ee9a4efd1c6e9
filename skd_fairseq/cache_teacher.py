"""skd-fairseq-cache-teacher: run a teacher once over a binarised split and store its top K per target.

  skd-fairseq-cache-teacher DATA_BIN --path TEACHER.pt[:OTHER.pt] --subset train --topk 8 --out DIR \\
      [-s de -t en | --task language_modeling --tokens-per-sample N --sample-break-mode M] \\
      [--max-tokens 4096] [--dtype float32] [--temperature 1]

The teacher (an ensemble: checkpoints separated by ':', averaged in probability space) runs in
eval mode, teacher-forced on the gold prefixes, over every sample of the split, and the cache
stores each target position's K most probable tokens and their log-probabilities in fairseq's
indexed-dataset format with a manifest (:mod:`skd_fairseq.criterions.teacher_cache`).
``label_smoothed_word_kd`` and ``label_smoothed_tie_kd`` read it with ``--kd-teacher-cache DIR``
instead of running the teacher. The task options are fairseq's, as for fairseq-generate; the
task must be the one the students train with (the criteria check the dictionaries, languages
and, for language modelling, the block layout). A GPU is used when torch sees one (--cpu: not);
--fp16 runs the teacher in half precision there. --dtype float32 (the default) stores what
fairseq computes exactly; float16 halves the log-probabilities' bytes.
"""

import datetime
import logging
import os
import sys
import time

import numpy as np
import torch
from fairseq import options, tasks, utils
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.logging import progress_bar

from .criterions.teacher import TeacherEnsemble
from .criterions.teacher_cache import (
    FLOAT_BITS,
    MANIFEST,
    TeacherCacheWriter,
    check_cacheable,
    data_sha256,
    file_sha256,
    split_data_files,
    target_positions,
    target_sizes,
    task_description,
)
from .distillation import teacher_topk_log_probs

logger = logging.getLogger("skd_fairseq.cache_teacher")


def build_parser():
    parser = options.get_parser("Teacher cache", default_task="translation")
    options.add_dataset_args(parser)
    group = parser.add_argument_group("Teacher cache")
    group.add_argument("--path", required=True, help="teacher checkpoint, or several separated by ':' (an ensemble)")
    group.add_argument("--subset", default="train", help="the binarised split to run the teacher over")
    group.add_argument("--topk", type=int, default=8, help="K >= 1: tokens kept per target position")
    group.add_argument("--out", required=True, help="the cache directory to write (new, or without a cache)")
    group.add_argument("--dtype", choices=list(FLOAT_BITS), default="float32", help="storage of the log-probabilities")
    group.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="T_c > 0 of the stored distribution; one teacher's cache serves any --kd-temperature, an "
        "ensemble's only T_c",
    )
    return parser


def check_arguments(args) -> None:
    if args.topk < 1:
        sys.exit(f"skd-fairseq-cache-teacher: --topk must be >= 1, got {args.topk}")
    if not args.temperature > 0:
        sys.exit(f"skd-fairseq-cache-teacher: --temperature must be > 0, got {args.temperature}")
    if os.path.exists(os.path.join(args.out, MANIFEST)):
        sys.exit(
            f"skd-fairseq-cache-teacher: {args.out} already holds a teacher cache; remove it or give another --out"
        )


def teacher_placement(cfg):
    """(device, dtype) the teacher runs in: a GPU unless --cpu or none, half with --fp16 or
    --bf16 there."""
    cuda = torch.cuda.is_available() and not cfg.common.cpu
    device = torch.device("cuda") if cuda else torch.device("cpu")
    if cuda and cfg.common.fp16:
        return device, torch.float16
    if cuda and cfg.common.bf16:
        return device, torch.bfloat16
    return device, torch.float32


def split_batches(task, dataset, teacher, cfg, subset):
    """Batches of the whole split in sample order; every sample must fit the teacher."""
    max_positions = utils.resolve_max_positions(task.max_positions(), *[m.max_positions() for m in teacher.models])
    indices, ignored = dataset.filter_indices_by_size(np.arange(len(dataset), dtype=np.int64), max_positions)
    if len(ignored):
        sys.exit(
            f"skd-fairseq-cache-teacher: {len(ignored)} samples of '{subset}' are longer than the teacher's "
            f"maximum positions {max_positions} (the first: sample {int(ignored[0])}); a cache covers every "
            "sample of the split, so shorten them or train with a larger --max-target-positions"
        )
    max_tokens, batch_size = cfg.dataset.max_tokens, cfg.dataset.batch_size
    if max_tokens is None and batch_size is None:
        max_tokens = 4096
    return dataset.batch_by_size(
        indices, max_tokens=max_tokens, max_sentences=batch_size, required_batch_size_multiple=1
    )


def write_cache(args, cfg, task, teacher, dataset):
    """Run the teacher over ``dataset`` and write the cache; returns its manifest."""
    device, dtype = teacher_placement(cfg)
    like = torch.empty(0, device=device, dtype=dtype)
    pad = task.target_dictionary.pad()
    batches = split_batches(task, dataset, teacher, cfg, args.subset)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, collate_fn=dataset.collater, num_workers=cfg.dataset.num_workers
    )
    progress = progress_bar.progress_bar(
        loader,
        log_format=cfg.common.log_format,
        log_interval=cfg.common.log_interval,
        prefix=f"cache {args.subset}",
        default_log_format="tqdm",
    )
    writer = TeacherCacheWriter(args.out, args.subset, args.topk, args.dtype, len(task.target_dictionary))
    sizes, offsets, next_id = target_sizes(dataset), set(), 0
    start = time.time()
    for batch in progress:
        if not batch:
            continue
        lengths = target_positions(batch["target"], pad)
        ids = batch["id"]
        order = ids.argsort()  # the collater sorts a batch by source length; the cache is in sample order
        if not torch.equal(ids[order], torch.arange(next_id, next_id + len(ids))):
            raise RuntimeError(f"batches out of sample order at sample {next_id}")
        next_id += len(ids)
        net_input = utils.move_to_cuda(batch["net_input"]) if device.type == "cuda" else batch["net_input"]
        top_lprobs, top_ids = teacher_topk_log_probs(
            teacher.log_probs(net_input, like=like), args.temperature, args.topk
        )
        top_lprobs, top_ids = top_lprobs.cpu(), top_ids.cpu()
        for b in order.tolist():
            length = int(lengths[b])
            writer.add(top_ids[b, :length], top_lprobs[b, :length])
            if sizes is not None:
                offsets.add(length - int(sizes[int(ids[b])]))
    if next_id != len(dataset):
        raise RuntimeError(f"the teacher ran over {next_id} of the split's {len(dataset)} samples")
    if len(offsets) > 1:
        raise RuntimeError(f"target positions differ from the dataset's sizes by {sorted(offsets)}")
    return writer.finalize(
        dict(
            task_description(task),
            teachers=[{"path": os.path.abspath(p), "sha256": file_sha256(p)} for p in teacher.paths],
            data=os.path.abspath(utils.split_paths(cfg.task.data)[0]),
            data_files=[os.path.basename(f) for f in split_data_files(task, args.subset)],
            data_sha256=data_sha256(split_data_files(task, args.subset)),
            temperature=args.temperature,
            target_offset=offsets.pop() if offsets else 0,
            teacher_device=str(device),
            teacher_dtype=str(dtype).replace("torch.", ""),
            build_seconds=round(time.time() - start, 1),
            created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def main(argv=None):
    args = options.parse_args_and_arch(build_parser(), argv)
    check_arguments(args)
    utils.import_user_module(args)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    try:
        check_cacheable(task, args.subset, "skd-fairseq-cache-teacher")
        teacher = TeacherEnsemble.from_checkpoints(args.path, task, flag="--path")
        task.load_dataset(args.subset, combine=True, epoch=1)  # as fairseq-train loads its training split
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"skd-fairseq-cache-teacher: {err}")
    dataset = task.dataset(args.subset)
    manifest = write_cache(args, cfg, task, teacher, dataset)
    print(
        f"[cache-teacher] {manifest['sentences']} samples, {manifest['target_tokens']} target tokens, top "
        f"{manifest['topk']} ({manifest['dtype']}): {manifest['bytes']} bytes, "
        f"{manifest['bytes_per_target_token']} per target token, mean top-{manifest['topk']} mass "
        f"{manifest['mean_topk_mass']:.4f}, {manifest['build_seconds']} s -> {args.out}"
    )


if __name__ == "__main__":
    main()
