"""Whether a teacher cache was built from these teacher checkpoints (scripts/train.sh, reproduce.sh).

  python -m skd_experiments.teacher_cache_check CACHE_DIR CHECKPOINT[:CHECKPOINT...]

Exit 0 when the cache's manifest names exactly these checkpoints (compared by sha256, in any
order), 3 when it names others (a teacher retrained or averaged again since the cache was
built: word-level KD from it would silently learn from the old teacher), 2 when CACHE_DIR holds
no cache. Reads the manifest without importing fairseq.
"""

import hashlib
import json
import os
import sys


def sha256(path):
    # skd_fairseq.criterions.teacher_cache.file_sha256 computes the same; importing it would import
    # fairseq (seconds) for a check the scripts run before every cached row.
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return
    if len(sys.argv) != 3:
        sys.exit(
            "usage: python -m skd_experiments.teacher_cache_check CACHE_DIR CHECKPOINT[:CHECKPOINT...] (see --help)"
        )
    cache, checkpoints = sys.argv[1], sys.argv[2].split(":")
    manifest = os.path.join(cache, "manifest.json")
    if not os.path.isfile(manifest):
        print(f"teacher_cache_check: no teacher cache in {cache} (no manifest.json)", file=sys.stderr)
        sys.exit(2)
    with open(manifest) as f:
        cached = sorted(t["sha256"] for t in json.load(f)["teachers"])
    if sorted(sha256(path) for path in checkpoints) != cached:
        print(
            f"teacher_cache_check: the cache {cache} was built from other teacher checkpoints than "
            f"{sys.argv[2]} (their sha256 differ)",
            file=sys.stderr,
        )
        sys.exit(3)


if __name__ == "__main__":
    main()
