"""The IWSLT'14, WMT'14 and WikiText-103 preparation scripts on tiny inputs written in each
release's own format, and the Multi30k language-modelling variant."""

import io
import tarfile
import zipfile

import pytest

from conftest import REPO, run

SCRIPTS = REPO / "scripts"

GERMAN = ["Hallo, Welt!", "Das ist ein Test.", "Wir sehen uns morgen.", "Es regnet heute nicht.",
          "Der Hund läuft im Park.", "Ich trinke gern Kaffee."]
ENGLISH = ["Hello, World!", "This is a test.", "See you tomorrow.", "It is not raining today.",
           "The dog runs in the park.", "I like drinking coffee."]


def add_file(tar, name, text):
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def iwslt_train(sentences, lang):
    """train.tags.de-en.LANG: talks with their XML header lines, as the release has them."""
    lines = []
    for talk in range(3):
        lines += [f"<url>http://www.ted.com/talks/talk{talk}.html</url>", "<keywords>talks, tests</keywords>",
                  f"<talkid>{talk}</talkid>", f"<title>Talk {talk}</title>", "<description>A talk.</description>"]
        lines += [f"{s} ({talk}-{i})" for i in range(20) for s in sentences]
    return "\n".join(lines) + "\n"


def xml_set(sentences, lang, set_id):
    segs = "\n".join(f'<seg id="{i + 1}"> {s} </seg>' for i, s in enumerate(sentences))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n<srcset setid="{set_id}" srclang="{lang}">\n'
            f'<doc docid="1" genre="lectures">\n<url>http://www.ted.com</url>\n{segs}\n</doc>\n</srcset>\n</mteval>\n')


IWSLT_TESTS = ["IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010",
               "IWSLT14.TED.tst2011", "IWSLT14.TED.tst2012"]


@pytest.fixture(scope="module")
def iwslt_archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("iwslt") / "de-en.tgz"
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "de-en/train.tags.de-en.de", iwslt_train(GERMAN, "de"))
        add_file(tar, "de-en/train.tags.de-en.en", iwslt_train(ENGLISH, "en"))
        for t in IWSLT_TESTS:
            add_file(tar, f"de-en/{t}.de-en.de.xml", xml_set(GERMAN[:2] + ["Er sagt ’nein’."], "de", t))
            add_file(tar, f"de-en/{t}.de-en.en.xml", xml_set(ENGLISH[:2] + ["He says ’no’."], "en", t))
    return path


def test_prepare_iwslt14_follows_fairseqs_recipe(iwslt_archive, tmp_path):
    out = tmp_path / "iwslt"
    proc = run(["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-r", iwslt_archive, "-o", out,
                "--bpe-tokens", "40", "--skip-count-check"])
    assert "ready" in proc.stdout
    train = (out / "tok" / "train.en").read_text().splitlines()
    valid = (out / "tok" / "valid.en").read_text().splitlines()
    assert len(train) + len(valid) == 3 * 20 * 6 + 3 * 2  # the title and description lines stay
    assert len(valid) == (len(train) + len(valid)) // 23
    assert not any("<url>" in line or "<talkid>" in line or "<title>" in line for line in train + valid)
    assert "hello , world ! ( 0-0 )" in train  # Moses tokenisation, lowercased
    test = (out / "tok" / "test.en").read_text().splitlines()
    assert len(test) == 15 and test[2] == "he says &apos; no &apos; ."
    for lang in ("de", "en"):
        assert (out / "bin" / f"dict.{lang}.txt").exists()
        assert (out / "bin" / f"test.de-en.{lang}.bin").exists()
    assert any("@@" in line for line in (out / "bpe" / "train.de").read_text().splitlines())
    # Resumes without redoing work.
    again = run(["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-r", iwslt_archive, "-o", out,
                 "--bpe-tokens", "40", "--skip-count-check"])
    assert "tokenising" not in again.stdout and "fairseq-preprocess" not in again.stdout


def test_prepare_iwslt14_checks_its_input(iwslt_archive, tmp_path):
    proc = run(["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-r", iwslt_archive, "-o", tmp_path / "a",
                "--bpe-tokens", "40"], check=False)
    assert proc.returncode == 1 and "test has 15 pairs, expected 6,750" in proc.stderr
    (tmp_path / "de-en").mkdir()
    proc = run(["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-r", tmp_path / "de-en", "-o", tmp_path / "b"],
               check=False)
    assert proc.returncode == 1 and "missing" in proc.stderr and "train.tags.de-en.de" in proc.stderr
    proc = run(["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-o", tmp_path / "c"], check=False)
    assert proc.returncode == 1 and "give the IWSLT'14 archive" in proc.stderr


def sgm(sentences, kind, lang):
    segs = "\n".join(f'<seg id="{i + 1}">{s}</seg>' for i, s in enumerate(sentences))
    return (f'<{kind}set setid="newstest2014" srclang="any"><doc sysid="ref" docid="1" origlang="en">\n'
            f'{segs}\n</doc></{kind}set>\n')


@pytest.fixture(scope="module")
def wmt_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("wmt")
    corpora = {"training-parallel-europarl-v7.tgz": "training/europarl-v7.de-en",
               "training-parallel-commoncrawl.tgz": "commoncrawl.de-en",
               "training-parallel-nc-v12.tgz": "training/news-commentary-v12.de-en"}
    for i, (archive, corpus) in enumerate(corpora.items()):
        with tarfile.open(raw / archive, "w:gz") as tar:
            add_file(tar, f"{corpus}.en", "".join(f"{s} A well-known case {i}-{n}.\n" for n in range(20) for s in ENGLISH))
            add_file(tar, f"{corpus}.de", "".join(f"{s} Ein bekannter Fall {i}-{n}.\n" for n in range(20) for s in GERMAN))
    with tarfile.open(raw / "test-full.tgz", "w:gz") as tar:
        add_file(tar, "test-full/newstest2014-deen-src.en.sgm", sgm(ENGLISH + ["A state-of-the-art test."], "src", "en"))
        add_file(tar, "test-full/newstest2014-deen-ref.de.sgm", sgm(GERMAN + ["Ein hochmoderner Test."], "ref", "de"))
    return raw


def test_prepare_wmt14_follows_fairseqs_recipe(wmt_raw, tmp_path):
    out = tmp_path / "wmt"
    run(["bash", SCRIPTS / "prepare-wmt14-en-de.sh", "-r", wmt_raw, "-o", out, "--bpe-tokens", "50",
         "--skip-count-check"])
    assert (out / "raw" / "test.en").read_text().splitlines()[-1] == "A state-of-the-art test."
    assert (out / "tok" / "test.en").read_text().splitlines()[-1] == "A state @-@ of @-@ the @-@ art test ."
    total = 3 * 20 * 6
    valid = (out / "tok" / "valid.en").read_text().splitlines()
    assert len(valid) == total // 100 and len((out / "tok" / "train.en").read_text().splitlines()) == total - len(valid)
    assert (out / "bin" / "dict.en.txt").read_text() == (out / "bin" / "dict.de.txt").read_text()  # joined
    assert (out / "bin" / "test.en-de.de.idx").exists()


def test_prepare_wmt14_checks_the_corpus_sizes(wmt_raw, tmp_path):
    proc = run(["bash", SCRIPTS / "prepare-wmt14-en-de.sh", "-r", wmt_raw, "-o", tmp_path / "w"], check=False)
    assert proc.returncode == 1
    assert "training/europarl-v7.de-en has 120 lines, expected 1920209" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(["bash", SCRIPTS / "prepare-wmt14-en-de.sh", "-r", empty, "-o", tmp_path / "e"], check=False)
    assert proc.returncode == 1 and "missing training/europarl-v7.de-en.en" in proc.stderr


def test_prepare_wikitext103_checks_and_binarises(tmp_path):
    text = " \n = Heading = \n \n The cat sat on the mat . \n A dog ran in the <unk> park . \n"
    archive = tmp_path / "wikitext-103-v1.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for split in ("train", "valid", "test"):
            z.writestr(f"wikitext-103/wiki.{split}.tokens", text * 5)
    proc = run(["bash", SCRIPTS / "prepare-wikitext-103.sh", "-r", archive, "-o", tmp_path / "a"], check=False)
    assert proc.returncode == 1 and "has 25 lines, expected 1801350" in proc.stderr
    run(["bash", SCRIPTS / "prepare-wikitext-103.sh", "-r", archive, "-o", tmp_path / "b", "--skip-count-check"])
    assert (tmp_path / "b" / "bin" / "train.bin").exists() and (tmp_path / "b" / "bin" / "dict.txt").exists()


def test_prepare_multi30k_language_model_side(multi30k_bin):
    from conftest import require_shared

    args = ["bash", SCRIPTS / "prepare-multi30k.sh", "-r", require_shared("multi30k"), "-o", multi30k_bin,
            "--train-lines", "2000", "--eval-lines", "100", "--vocab-size", "1000"]
    proc = run(args + ["--lm", "fr"], check=False)
    assert proc.returncode == 1 and "--lm must be one side of the pair (de or en)" in proc.stderr
    run(args + ["--lm", "en"])
    lm = multi30k_bin / "lm-en" / "bin"
    assert (lm / "dict.txt").exists() and (lm / "train.bin").exists() and (lm / "test.idx").exists()
