#!/usr/bin/env python
"""Sentence lengths of a split that fairseq-preprocess binarised, without importing fairseq.

  python -m skd_experiments.indexed_sizes PREFIX    prints "SENTENCES TOKENS" of PREFIX.{idx,bin}

fairseq-preprocess writes its default format ("mmap") with an index that holds every
sentence's length as int32 after a 26-byte header (fairseq.data.indexed_dataset,
MMapIndexedDataset.Index): reading it with numpy takes milliseconds, where importing
fairseq takes seconds in every script that only counts. Other (legacy) formats are read
with fairseq itself.
"""

import os
import struct
import sys

import numpy as np

MMAP_MAGIC = b"MMIDIDX\x00\x00"
HEADER = struct.Struct("<9sQBQ")  # magic, version, dtype code, sentences


def split_sizes(prefix):
    """Token count of each sentence of the binarised split PREFIX (int64 array); None when
    PREFIX.idx or PREFIX.bin is missing."""
    index = prefix + ".idx"
    if not (os.path.exists(index) and os.path.exists(prefix + ".bin")):
        return None
    with open(index, "rb") as f:
        header = f.read(HEADER.size)
        if header[: len(MMAP_MAGIC)] != MMAP_MAGIC:
            return _sizes_with_fairseq(prefix)
        _, version, _, sentences = HEADER.unpack(header)
        if version != 1:
            raise ValueError(f"{index}: mmap index version {version}; fairseq 0.12 writes version 1")
        sizes = np.fromfile(f, dtype="<i4", count=sentences)
    if len(sizes) != sentences:
        raise ValueError(f"{index} is truncated: {len(sizes)} of its {sentences} sentence lengths")
    return sizes.astype(np.int64)


def _sizes_with_fairseq(prefix):
    import logging

    logging.disable(logging.INFO)  # fairseq's import messages
    from fairseq.data import data_utils

    dataset = data_utils.load_indexed_dataset(prefix, None)
    return None if dataset is None else np.asarray(dataset.sizes, dtype=np.int64)


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return
    if len(sys.argv) != 2:
        sys.exit("usage: python -m skd_experiments.indexed_sizes PREFIX (see --help)")
    sizes = split_sizes(sys.argv[1])
    if sizes is None:
        sys.exit(f"indexed_sizes: missing {sys.argv[1]}.idx or .bin")
    print(len(sizes), int(sizes.sum()))


if __name__ == "__main__":
    main()
