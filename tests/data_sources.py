"""Where the tests find the two datasets their fairseq commands read, Multi30k and the WikiText-2
sample: $SKD_SHARED_DATA/NAME, else ../shared/data/NAME beside the checkout, else a download from
the dataset's public repository into a cache directory (the demo finds Multi30k the same way:
MULTI30K_DIR, ../shared/data/multi30k, a download). Each downloaded file goes through a .part file
and is kept only once its line count is the upstream file's, so a cut-off download is fetched
again next time instead of failing every run after it."""

import fcntl
import gzip
import os
import pathlib
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[1]
BESIDE_CHECKOUT = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Dataset:
    url_variable: str  # the environment variable that replaces default_url
    default_url: str  # the base URL under which the files sit with their upstream names
    files: dict  # upstream name -> (name in the dataset's directory, line count)


DATASETS = {
    "multi30k": Dataset(
        "MULTI30K_URL",
        "https://github.com/multi30k/dataset/raw/master/data/task1/raw",
        {
            f"{split}.{lang}.gz": (f"{split}.{lang}.gz", lines)
            for split, lines in (("train", 29000), ("val", 1014), ("test_2016_flickr", 1000))
            for lang in ("de", "en")
        },
    ),
    # pytorch/examples keeps WikiText-2's tokenised files as train/valid/test.txt; the sample in
    # ../shared/data holds two of them under WikiText's own names (the tests train on the valid file).
    "wikitext-2-sample": Dataset(
        "WIKITEXT2_URL",
        "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2",
        {"valid.txt": ("wiki.valid.tokens", 3760), "test.txt": ("wiki.test.tokens", 4358)},
    ),
}


class DataUnavailable(Exception):
    """A dataset is neither local nor downloadable; the message says what to set."""


def cache_directory(environ):
    """$SKD_DATA_CACHE, else $XDG_CACHE_HOME/skd-fairseq, else ~/.cache/skd-fairseq."""
    if environ.get("SKD_DATA_CACHE"):
        return pathlib.Path(environ["SKD_DATA_CACHE"])
    if environ.get("XDG_CACHE_HOME"):
        return pathlib.Path(environ["XDG_CACHE_HOME"]) / "skd-fairseq"
    return pathlib.Path(environ.get("HOME") or pathlib.Path.home()) / ".cache" / "skd-fairseq"


def locate(name, environ=None, beside_checkout=None):
    """The directory holding dataset NAME ("multi30k" or "wikitext-2-sample") with the files the
    tests read: found locally, or downloaded into the cache. Raises DataUnavailable."""
    environ = os.environ if environ is None else environ
    beside_checkout = BESIDE_CHECKOUT if beside_checkout is None else pathlib.Path(beside_checkout)
    if environ.get("SKD_SHARED_DATA"):
        # Set on purpose: a wrong path is an error, not a reason to download.
        path = pathlib.Path(environ["SKD_SHARED_DATA"]) / name
        if not path.is_dir():
            raise DataUnavailable(
                f"SKD_SHARED_DATA={environ['SKD_SHARED_DATA']} has no {name}/ directory: point it at a directory"
                f" holding multi30k/ and wikitext-2-sample/ (as ../shared/data does), or unset it to read"
                f" {beside_checkout / name} or download into {cache_directory(environ) / name}"
            )
        return path
    if (beside_checkout / name).is_dir():
        return beside_checkout / name
    return download(name, environ, beside_checkout)


def what_to_set(name, environ, beside_checkout):
    """The end of every message about a dataset the tests cannot get: where they looked, what to set."""
    return (
        f"with nothing local (SKD_SHARED_DATA unset, {beside_checkout / name} absent) the tests download {name}"
        f" into the cache {cache_directory(environ) / name} (SKD_DATA_CACHE moves it). Offline, set"
        " SKD_SHARED_DATA to a directory holding multi30k/ and wikitext-2-sample/ (as ../shared/data does), or set"
        " MULTI30K_URL and WIKITEXT2_URL to mirrors: the base URLs under which the upstream files sit by name"
        " ($MULTI30K_URL/train.de.gz, ..., $WIKITEXT2_URL/valid.txt, $WIKITEXT2_URL/test.txt)"
    )


def download(name, environ, beside_checkout):
    dataset = DATASETS[name]
    cache = cache_directory(environ) / name
    base = (environ.get(dataset.url_variable) or dataset.default_url).rstrip("/")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache.parent / f"{name}.lock", "w")
    except OSError as error:
        raise DataUnavailable(
            f"cannot write the cache directory {cache} ({error}); {what_to_set(name, environ, beside_checkout)}"
        ) from None
    with lock:
        # The pytest-xdist workers share the cache: one downloads, the others wait and find the files.
        fcntl.flock(lock, fcntl.LOCK_EX)
        for upstream, (local, lines) in dataset.files.items():
            target = cache / local
            if target.is_file():
                continue
            url = f"{base}/{upstream}"
            part = target.with_name(target.name + ".part")
            try:
                with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
                    shutil.copyfileobj(response, out)
            except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors; a malformed URL a ValueError
                part.unlink(missing_ok=True)
                raise DataUnavailable(
                    f"could not download {url} ({error}); {what_to_set(name, environ, beside_checkout)}"
                ) from None
            problem = line_count_problem(part, gzipped=upstream.endswith(".gz"), expected=lines)
            if problem:
                part.unlink()
                raise DataUnavailable(
                    f"{url} {problem} (a cut-off download or another file), so it was not kept;"
                    f" {what_to_set(name, environ, beside_checkout)}"
                )
            part.replace(target)
    return cache


def line_count_problem(path, gzipped, expected):
    """Why the file is not the upstream one of `expected` lines (newlines, as wc -l counts them in
    scripts/prepare-multi30k.sh's check), or None when it is."""
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
            found = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError; a cut-off gzip stream an EOFError
        return f"cannot be read ({error})"
    return None if found == expected else f"has {found} lines, expected {expected}"
