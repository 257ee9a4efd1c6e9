"""Where the tests' data comes from (tests/data_sources.py): SKD_SHARED_DATA, ../shared/data, or a
download into the cache, proved against a copy of the datasets served over http://127.0.0.1 and
laid out as their public repositories serve them; and prepare-multi30k.sh's download from
MULTI30K_URL, which the demo uses."""

import gzip
import http.server
import os
import pathlib
import shutil
import socket
import threading

import data_sources
import pytest
from conftest import REPO, require_shared, run

# A proxy from the environment must not carry the requests to the local server.
NO_PROXY = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


class Upstream:
    """The served copy: root/NAME/UPSTREAM_FILE, at url(NAME); requested lists the paths asked for."""

    def __init__(self, root):
        self.root, self.port, self.requested = root, None, []

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def file(self, name, upstream_name):
        return self.root / name / upstream_name


@pytest.fixture
def upstream(tmp_path):
    """Copies of the local Multi30k and WikiText-2 sample under their upstream names (WikiText-2 as
    pytorch/examples names it: valid.txt, test.txt), served over http://127.0.0.1 from a thread."""
    root = tmp_path / "upstream"
    for name, dataset in data_sources.DATASETS.items():
        local = require_shared(name)
        (root / name).mkdir(parents=True)
        for upstream_name, (local_name, _) in dataset.files.items():
            shutil.copyfile(local / local_name, root / name / upstream_name)
    served = Upstream(root)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            served.requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):  # keeps the test's output to its own failures
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    served.port = server.server_port
    yield served
    server.shutdown()
    server.server_close()


@pytest.fixture
def nothing_local(tmp_path, monkeypatch):
    """No SKD_SHARED_DATA and no ../shared/data: the cache directory (tmp_path/cache) it leaves."""
    monkeypatch.delenv("SKD_SHARED_DATA", raising=False)
    monkeypatch.setattr(data_sources, "BESIDE_CHECKOUT", tmp_path / "no-shared-data")
    monkeypatch.setenv("SKD_DATA_CACHE", str(tmp_path / "cache"))
    for variable, value in NO_PROXY.items():
        monkeypatch.setenv(variable, value)
    return tmp_path / "cache"


def serve_from(monkeypatch, upstream):
    monkeypatch.setenv("MULTI30K_URL", upstream.url("multi30k"))
    monkeypatch.setenv("WIKITEXT2_URL", upstream.url("wikitext-2-sample"))


def upstream_paths(name):
    return sorted(f"/{name}/{upstream_name}" for upstream_name in data_sources.DATASETS[name].files)


def test_the_fixtures_download_what_is_not_local_into_the_cache_once(upstream, nothing_local, monkeypatch):
    serve_from(monkeypatch, upstream)
    for name, dataset in data_sources.DATASETS.items():
        assert require_shared(name) == nothing_local / name
        for upstream_name, (local_name, _) in dataset.files.items():
            got = (nothing_local / name / local_name).read_bytes()
            assert got == upstream.file(name, upstream_name).read_bytes(), local_name
    assert sorted(upstream.requested) == sorted(upstream_paths("multi30k") + upstream_paths("wikitext-2-sample"))
    assert not list(nothing_local.rglob("*.part"))
    upstream.requested.clear()
    for name in data_sources.DATASETS:
        assert require_shared(name) == nothing_local / name
    assert upstream.requested == []  # the cache is read, nothing fetched again


def test_a_cut_off_or_wrong_download_is_not_kept_and_is_fetched_again(upstream, nothing_local, monkeypatch):
    serve_from(monkeypatch, upstream)
    val_en = upstream.file("multi30k", "val.en.gz")
    whole = val_en.read_bytes()
    val_en.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(data_sources.DataUnavailable) as error:
        data_sources.locate("multi30k")
    assert f"{upstream.url('multi30k')}/val.en.gz cannot be read (" in str(error.value)
    assert "so it was not kept" in str(error.value) and "MULTI30K_URL" in str(error.value)
    kept = sorted(p.name for p in (nothing_local / "multi30k").iterdir())
    assert kept == ["train.de.gz", "train.en.gz", "val.de.gz"]  # the files before it, checked and kept
    test_txt = upstream.file("wikitext-2-sample", "test.txt")
    lines = test_txt.read_text().splitlines(keepends=True)
    test_txt.write_text("".join(lines[:100]))
    with pytest.raises(data_sources.DataUnavailable, match=r"test\.txt has 100 lines, expected 4358 \(a cut-off"):
        data_sources.locate("wikitext-2-sample")
    assert sorted(p.name for p in (nothing_local / "wikitext-2-sample").iterdir()) == ["wiki.valid.tokens"]

    val_en.write_bytes(whole)
    test_txt.write_text("".join(lines))
    upstream.requested.clear()
    assert data_sources.locate("multi30k") == nothing_local / "multi30k"
    assert data_sources.locate("wikitext-2-sample") == nothing_local / "wikitext-2-sample"
    assert sorted(upstream.requested) == [
        "/multi30k/test_2016_flickr.de.gz",
        "/multi30k/test_2016_flickr.en.gz",
        "/multi30k/val.en.gz",
        "/wikitext-2-sample/test.txt",
    ]
    with gzip.open(nothing_local / "multi30k" / "val.en.gz", "rt") as f:
        assert sum(1 for _ in f) == 1014


def test_offline_with_nothing_local_the_test_fails_naming_what_to_set(nothing_local, monkeypatch):
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv("MULTI30K_URL", f"{unreachable}/multi30k")
        monkeypatch.setenv("WIKITEXT2_URL", f"{unreachable}/wikitext")
        for name, first in (("multi30k", "multi30k/train.de.gz"), ("wikitext-2-sample", "wikitext/valid.txt")):
            with pytest.raises(pytest.fail.Exception) as failure:
                require_shared(name)
            message = str(failure.value)
            assert message.startswith(f"could not download {unreachable}/{first} (")
            for what in ("SKD_SHARED_DATA", "MULTI30K_URL", "WIKITEXT2_URL", "SKD_DATA_CACHE"):
                assert what in message, what
            assert f"into the cache {nothing_local / name} " in message
            assert f"{data_sources.BESIDE_CHECKOUT / name} absent" in message
            assert list((nothing_local / name).iterdir()) == []  # no .part left behind


def test_skd_shared_data_comes_first_then_shared_data_beside_the_checkout(tmp_path, monkeypatch):
    mine, beside = tmp_path / "mine", tmp_path / "beside"
    (mine / "multi30k").mkdir(parents=True)
    (beside / "multi30k").mkdir(parents=True)
    (beside / "wikitext-2-sample").mkdir()
    environ = {"SKD_SHARED_DATA": str(mine), "SKD_DATA_CACHE": str(tmp_path / "cache")}
    assert data_sources.locate("multi30k", environ, beside) == mine / "multi30k"
    # Set on purpose, a wrong SKD_SHARED_DATA is an error: neither ../shared/data nor a download.
    with pytest.raises(data_sources.DataUnavailable) as error:
        data_sources.locate("wikitext-2-sample", environ, beside)
    assert str(error.value).startswith(f"SKD_SHARED_DATA={mine} has no wikitext-2-sample/ directory: point it at")
    del environ["SKD_SHARED_DATA"]
    assert data_sources.locate("wikitext-2-sample", environ, beside) == beside / "wikitext-2-sample"
    assert not (tmp_path / "cache").exists()


def test_the_cache_directory_follows_skd_data_cache_then_xdg_cache_home_then_home():
    cache_directory = data_sources.cache_directory
    assert cache_directory({"SKD_DATA_CACHE": "/c", "XDG_CACHE_HOME": "/x"}) == pathlib.Path("/c")
    assert cache_directory({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == pathlib.Path("/x/skd-fairseq")
    assert cache_directory({"HOME": "/h"}) == pathlib.Path("/h/.cache/skd-fairseq")


@pytest.mark.slow
def test_prepare_multi30k_downloads_from_multi30k_url_and_keeps_only_whole_files(upstream, tmp_path):
    """The demo's download (prepare-multi30k.sh without --raw-dir or MULTI30K_DIR)."""
    env = {k: v for k, v in os.environ.items() if k != "MULTI30K_DIR"}
    env.update(NO_PROXY, MULTI30K_URL=upstream.url("multi30k"))
    out = tmp_path / "out"
    prepare = ["bash", REPO / "scripts" / "prepare-multi30k.sh", "-o", out]
    prepare += ["--train-lines", "100", "--eval-lines", "10", "--vocab-size", "200"]
    val_en = upstream.file("multi30k", "val.en.gz")
    whole = val_en.read_bytes()
    val_en.write_bytes(whole[: len(whole) // 2])
    proc = run(prepare, check=False, env=env)
    assert proc.returncode == 1
    assert (
        f"downloaded {upstream.url('multi30k')}/val.en.gz but it is not a readable gzip file, so it was not kept"
        in proc.stderr
    )
    assert "MULTI30K_URL" in proc.stderr
    assert sorted(p.name for p in (out / "download").iterdir()) == ["train.de.gz", "train.en.gz", "val.de.gz"]

    val_en.write_bytes(whole)
    upstream.requested.clear()
    proc = run(prepare, env=env)
    assert "[prepare-multi30k] ready" in proc.stdout
    assert sorted(upstream.requested) == [
        "/multi30k/test_2016_flickr.de.gz",
        "/multi30k/test_2016_flickr.en.gz",
        "/multi30k/val.en.gz",
    ]
    assert (out / "bin" / ".done").exists()
    assert len((out / "raw" / "train.de").read_text().splitlines()) == 100
