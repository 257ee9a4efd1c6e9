"""The IWSLT'14, WMT'14 and WikiText-103 preparation scripts on tiny inputs written in each
release's own format, and the Multi30k language-modelling variant."""

import io
import os
import shutil
import tarfile
import zipfile

import pytest
from conftest import REPO, prepare_multi30k_slice, run

from skd_experiments import score_translation, text_tools

SCRIPTS = REPO / "scripts"

GERMAN = [
    "Hallo, Welt!",
    "Das ist ein Test.",
    "Wir sehen uns morgen.",
    "Es regnet heute nicht.",
    "Der Hund läuft im Park.",
    "Ich trinke gern Kaffee.",
]
ENGLISH = [
    "Hello, World!",
    "This is a test.",
    "See you tomorrow.",
    "It is not raining today.",
    "The dog runs in the park.",
    "I like drinking coffee.",
]


def add_file(tar, name, text):
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# A pair that clean-corpus-n drops (length ratio above 1.5), at the start of every talk.
DROPPED = {"de": "Ja.", "en": "Yes, well, I think that this answer is far too long for it."}


def iwslt_train(sentences, lang):
    """train.tags.de-en.LANG: talks with their XML header lines, as the release has them."""
    lines = []
    for talk in range(3):
        lines += [
            f"<url>http://www.ted.com/talks/talk{talk}.html</url>",
            "<keywords>talks, tests</keywords>",
            f"<talkid>{talk}</talkid>",
            f"<title>Talk {talk}</title>",
            "<description>A talk.</description>",
            DROPPED[lang],
        ]
        lines += [f"{s} ({talk}-{i})" for i in range(20) for s in sentences]
    return "\n".join(lines) + "\n"


def iwslt_kept_training_lines(lang):
    """The recipe's view of iwslt_train: header lines dropped, tags removed, dropped pairs out."""
    lines = [
        line
        for line in iwslt_train(GERMAN if lang == "de" else ENGLISH, lang).splitlines()
        if not any(tag in line for tag in ("<url>", "<talkid>", "<keywords>"))
    ]
    for tag in ("<title>", "</title>", "<description>", "</description>"):
        lines = [line.replace(tag, "") for line in lines]
    return [line for line in lines if line != DROPPED[lang]]


def xml_set(sentences, lang, set_id):
    segs = "\n".join(f'<seg id="{i + 1}"> {s} </seg>' for i, s in enumerate(sentences))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n<srcset setid="{set_id}" srclang="{lang}">\n'
        f'<doc docid="1" genre="lectures">\n<url>http://www.ted.com</url>\n{segs}\n</doc>\n</srcset>\n</mteval>\n'
    )


IWSLT_TESTS = [
    "IWSLT14.TED.dev2010",
    "IWSLT14.TEDX.dev2012",
    "IWSLT14.TED.tst2010",
    "IWSLT14.TED.tst2011",
    "IWSLT14.TED.tst2012",
]


IWSLT_TEST_DE = GERMAN[:2] + ["Er sagt ’nein’."]
IWSLT_TEST_EN = ENGLISH[:2] + ["He says ’no’."]


def write_iwslt_archive(path, short_test=False):
    """The de-en.tgz layout; short_test: one English test set lacks its last segment."""
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "de-en/train.tags.de-en.de", iwslt_train(GERMAN, "de"))
        add_file(tar, "de-en/train.tags.de-en.en", iwslt_train(ENGLISH, "en"))
        for t in IWSLT_TESTS:
            add_file(tar, f"de-en/{t}.de-en.de.xml", xml_set(IWSLT_TEST_DE, "de", t))
            english = IWSLT_TEST_EN[:-1] if short_test and t == IWSLT_TESTS[-1] else IWSLT_TEST_EN
            add_file(tar, f"de-en/{t}.de-en.en.xml", xml_set(english, "en", t))
    return path


@pytest.fixture(scope="module")
def iwslt_archive(tmp_path_factory):
    return write_iwslt_archive(tmp_path_factory.mktemp("iwslt") / "de-en.tgz")


@pytest.mark.slow
def test_prepare_iwslt14_follows_fairseqs_recipe(tmp_path):
    out = tmp_path / "iwslt"
    archive = tmp_path / "de-en.tgz"
    args = ["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-r", archive, "-o", out, "--skip-count-check"]
    # A faulty archive fails its size check and leaves no marker behind...
    write_iwslt_archive(archive, short_test=True)
    proc = run(args + ["--bpe-tokens", "40"], check=False)
    assert proc.returncode == 1 and "test: 15 German but 14 English lines" in proc.stderr
    assert not any((out / p).exists() for p in ("tmp/.extracted", "tmp/.train", "tmp/.test", "prepare.options"))
    # ...so the corrected archive, put in its place, is extracted and prepared afresh.
    write_iwslt_archive(archive)
    proc = run(args + ["--bpe-tokens", "40"])
    assert "ready" in proc.stdout
    train = (out / "tok" / "train.en").read_text().splitlines()
    valid = (out / "tok" / "valid.en").read_text().splitlines()
    assert len(train) + len(valid) == 3 * 20 * 6 + 3 * 2  # the title and description lines stay
    assert len(valid) == (len(train) + len(valid)) // 23
    assert not any("<url>" in line or "<talkid>" in line or "<title>" in line for line in train + valid)
    assert "hello , world ! ( 0-0 )" in train  # Moses tokenisation, lowercased
    test = (out / "tok" / "test.en").read_text().splitlines()
    assert len(test) == 15 and test[2] == "he says &apos; no &apos; ."
    # sacrebleu's references: the same sentences untokenised (’ -> ' as the recipe does).
    assert (out / "raw" / "test.en").read_text().splitlines() == [s.replace("’", "'") for s in IWSLT_TEST_EN] * 5
    assert (out / "raw" / "test.de").read_text().splitlines() == [s.replace("’", "'") for s in IWSLT_TEST_DE] * 5
    for lang in ("de", "en"):
        kept = iwslt_kept_training_lines(lang)
        raw_valid = (out / "raw" / f"valid.{lang}").read_text().splitlines()
        assert raw_valid == kept[22::23]  # every 23rd pair that clean kept, untokenised
        tok_valid = (out / "tok" / f"valid.{lang}").read_text().splitlines()
        assert [t.replace(" ", "") for t in tok_valid] == [r.lower().replace(" ", "") for r in raw_valid]
    for lang in ("de", "en"):
        assert (out / "bin" / f"dict.{lang}.txt").exists()
        assert (out / "bin" / f"test.de-en.{lang}.bin").exists()
    assert any("@@" in line for line in (out / "bpe" / "train.de").read_text().splitlines())
    # Resumes without redoing work.
    again = run(args + ["--bpe-tokens", "40"])
    assert "tokenising" not in again.stdout and "fairseq-preprocess" not in again.stdout
    # Other options, or another input, would mix with this build: refused.
    proc = run(args + ["--bpe-tokens", "50"], check=False)
    assert proc.returncode == 1
    assert f"{out} was prepared with other options (bpe_tokens=40); use another -o or delete it" in proc.stderr
    os.utime(archive, (1, 1))  # a copy of the same file (another time) is the same input
    assert "tokenising" not in run(args + ["--bpe-tokens", "40"]).stdout
    archive.write_bytes(archive.read_bytes() + b"\0")  # a corrected file is another
    proc = run(args + ["--bpe-tokens", "40"], check=False)
    assert proc.returncode == 1 and "was prepared with other options" in proc.stderr and "sha256=" in proc.stderr


@pytest.mark.slow
def test_prepare_iwslt14_checks_its_input(iwslt_archive, tmp_path):
    proc = run(
        ["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-r", iwslt_archive, "-o", tmp_path / "a", "--bpe-tokens", "40"],
        check=False,
    )
    assert proc.returncode == 1 and "test has 15 pairs, expected 6,750" in proc.stderr
    (tmp_path / "de-en").mkdir()
    proc = run(
        ["bash", SCRIPTS / "prepare-iwslt14-de-en.sh", "-r", tmp_path / "de-en", "-o", tmp_path / "b"], check=False
    )
    assert proc.returncode == 1 and "missing" in proc.stderr and "train.tags.de-en.de" in proc.stderr


UNREACHABLE = "http://127.0.0.1:9"  # the discard port: refused at once, no network needed


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, variable, url",
    [
        ("prepare-iwslt14-de-en.sh", "IWSLT14_URL", f"{UNREACHABLE}/de-en.tgz"),
        ("prepare-wmt14-en-de.sh", "WMT14_URL_BASE", f"{UNREACHABLE}/training-parallel-europarl-v7.tgz"),
        ("prepare-wikitext-103.sh", "WIKITEXT103_URL", f"{UNREACHABLE}/wikitext-103-v1.zip"),
    ],
)
def test_prepare_scripts_download_without_r_and_say_what_to_do_when_that_fails(script, variable, url, tmp_path):
    value = UNREACHABLE if variable == "WMT14_URL_BASE" else url
    proc = run(
        ["bash", SCRIPTS / script, "-o", tmp_path / "out"],
        check=False,
        timeout=120,
        env=dict(os.environ, **{variable: value}),
    )
    assert proc.returncode == 1
    assert f"could not download {url} (the host may have moved)" in proc.stderr
    assert "by hand (see --help" in proc.stderr and "with -r" in proc.stderr
    assert "downloading" in proc.stdout
    assert all(f.name.endswith(".part") for f in (tmp_path / "out" / "download").iterdir())  # none taken as done


def sgm(sentences, kind, lang):
    segs = "\n".join(f'<seg id="{i + 1}">{s}</seg>' for i, s in enumerate(sentences))
    return (
        f'<{kind}set setid="newstest2014" srclang="any"><doc sysid="ref" docid="1" origlang="en">\n'
        f"{segs}\n</doc></{kind}set>\n"
    )


@pytest.fixture(scope="module")
def wmt_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("wmt")
    corpora = {
        "training-parallel-europarl-v7.tgz": "training/europarl-v7.de-en",
        "training-parallel-commoncrawl.tgz": "commoncrawl.de-en",
        "training-parallel-nc-v12.tgz": "training/news-commentary-v12.de-en",
    }
    for i, (archive, corpus) in enumerate(corpora.items()):
        with tarfile.open(raw / archive, "w:gz") as tar:
            add_file(
                tar, f"{corpus}.en", "".join(f"{s} A well-known case {i}-{n}.\n" for n in range(20) for s in ENGLISH)
            )
            add_file(
                tar, f"{corpus}.de", "".join(f"{s} Ein bekannter Fall {i}-{n}.\n" for n in range(20) for s in GERMAN)
            )
    with tarfile.open(raw / "test-full.tgz", "w:gz") as tar:
        add_file(
            tar, "test-full/newstest2014-deen-src.en.sgm", sgm(ENGLISH + ["A state-of-the-art test."], "src", "en")
        )
        add_file(tar, "test-full/newstest2014-deen-ref.de.sgm", sgm(GERMAN + ["Ein hochmoderner Test."], "ref", "de"))
    return raw


@pytest.mark.slow
def test_prepare_wmt14_follows_fairseqs_recipe(wmt_raw, tmp_path):
    out = tmp_path / "wmt"
    raw = tmp_path / "raw"
    shutil.copytree(wmt_raw, raw)
    args = ["bash", SCRIPTS / "prepare-wmt14-en-de.sh", "-r", raw, "-o", out, "--skip-count-check"]
    # A faulty archive (a German line missing) fails its size check and its extraction is forgotten...
    good = (raw / "training-parallel-nc-v12.tgz").read_bytes()
    with tarfile.open(raw / "training-parallel-nc-v12.tgz", "w:gz") as tar:
        add_file(tar, "training/news-commentary-v12.de-en.en", "One.\nTwo.\n")
        add_file(tar, "training/news-commentary-v12.de-en.de", "Eins.\n")
    proc = run(args + ["--bpe-tokens", "50"], check=False)
    assert proc.returncode == 1 and "training/news-commentary-v12.de-en: 2 English but 1 German lines" in proc.stderr
    assert not (out / "orig" / ".training-parallel-nc-v12.tgz.done").exists()
    assert (out / "orig" / ".training-parallel-europarl-v7.tgz.done").exists()
    assert not (out / "prepare.options").exists()
    # ...so the corrected archive is extracted and prepared.
    (raw / "training-parallel-nc-v12.tgz").write_bytes(good)
    run(args + ["--bpe-tokens", "50"])
    assert (out / "raw" / "test.en").read_text().splitlines()[-1] == "A state-of-the-art test."
    assert (out / "tok" / "test.en").read_text().splitlines()[-1] == "A state @-@ of @-@ the @-@ art test ."
    total = 3 * 20 * 6
    valid = (out / "tok" / "valid.en").read_text().splitlines()
    assert len(valid) == total // 100 and len((out / "tok" / "train.en").read_text().splitlines()) == total - len(valid)
    assert (out / "bin" / "dict.en.txt").read_text() == (out / "bin" / "dict.de.txt").read_text()  # joined
    assert (out / "bin" / "test.en-de.de.idx").exists()
    proc = run(args + ["--bpe-tokens", "60"], check=False)
    assert proc.returncode == 1
    assert f"{out} was prepared with other options (bpe_tokens=50); use another -o or delete it" in proc.stderr


@pytest.mark.slow
def test_prepare_wmt14_checks_the_corpus_sizes(wmt_raw, tmp_path):
    proc = run(["bash", SCRIPTS / "prepare-wmt14-en-de.sh", "-r", wmt_raw, "-o", tmp_path / "w"], check=False)
    assert proc.returncode == 1
    assert "training/europarl-v7.de-en has 120 lines, expected 1920209" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(["bash", SCRIPTS / "prepare-wmt14-en-de.sh", "-r", empty, "-o", tmp_path / "e"], check=False)
    assert proc.returncode == 1 and "missing training/europarl-v7.de-en.en" in proc.stderr


@pytest.mark.slow
def test_prepare_wikitext103_checks_and_binarises(tmp_path):
    text = " \n = Heading = \n \n The cat sat on the mat . \n A dog ran in the <unk> park . \n"
    archive = tmp_path / "wikitext-103-v1.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for split in ("train", "valid", "test"):
            z.writestr(f"wikitext-103/wiki.{split}.tokens", text * 5)
    proc = run(["bash", SCRIPTS / "prepare-wikitext-103.sh", "-r", archive, "-o", tmp_path / "a"], check=False)
    assert proc.returncode == 1 and "has 25 lines, expected 1801350" in proc.stderr
    assert not (tmp_path / "a" / ".extracted").exists()  # a re-run extracts a corrected zip
    run(["bash", SCRIPTS / "prepare-wikitext-103.sh", "-r", archive, "-o", tmp_path / "b", "--skip-count-check"])
    assert (tmp_path / "b" / "bin" / "train.bin").exists() and (tmp_path / "b" / "bin" / "dict.txt").exists()
    # The extracted directory instead of the zip is another input: refused for the same OUT.
    proc = run(
        [
            "bash",
            SCRIPTS / "prepare-wikitext-103.sh",
            "-r",
            tmp_path / "b" / "wikitext-103",
            "-o",
            tmp_path / "b",
            "--skip-count-check",
        ],
        check=False,
    )
    assert proc.returncode == 1 and "was prepared with other options" in proc.stderr
    assert "wikitext-103-v1.zip size=" in proc.stderr


@pytest.mark.slow
def test_prepare_wikitext103_names_a_missing_file(tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"wiki.{split}.tokens").write_text(" = Heading = \n text \n")
    proc = run(["bash", SCRIPTS / "prepare-wikitext-103.sh", "-r", tmp_path, "-o", tmp_path / "o"], check=False)
    assert proc.returncode == 1 and f"missing or empty {tmp_path}/wiki.valid.tokens" in proc.stderr
    proc = run(
        ["bash", SCRIPTS / "prepare-wikitext-103.sh", "-r", tmp_path / "nowhere", "-o", tmp_path / "o"], check=False
    )
    assert proc.returncode == 1 and "is neither wikitext-103-v1.zip nor its extracted directory" in proc.stderr


def test_score_translation_lowercase_and_the_shared_compound_split():
    hyps, refs = ["The Cat sits on the mat today ."] * 2, ["the cat sits on the mat today ."] * 2
    cased = score_translation.score(hyps, refs)
    lower = score_translation.score(hyps, refs, lowercase=True)
    assert cased["bleu"] < 100 and cased["chrf"] < 100
    assert lower["bleu"] == 100.0 and lower["chrf"] == 100.0
    assert "|case:lc|" in lower["bleu_signature"] and "|case:lc|" in lower["chrf_signature"]
    assert score_translation.split_compounds is text_tools.split_compounds
    assert text_tools.split_compounds("a well-known test") == "a well ##AT##-##AT## known test"
    split = score_translation.tokenized_bleu(
        ["the well-known cat sat on a mat"] * 2, ["the well-known cat sat on a mat"] * 2, "compound-split"
    )
    assert split["bleu_tokenized"] == 100.0 and split["bleu_tokenized_kind"] == "compound-split"


@pytest.mark.slow
def test_prepare_multi30k_language_model_side(multi30k_bin):
    args = prepare_multi30k_slice(multi30k_bin)
    proc = run(args + ["--lm", "fr"], check=False)
    assert proc.returncode == 1 and "--lm must be one side of the pair (de or en)" in proc.stderr
    run(args + ["--lm", "en"])
    lm = multi30k_bin / "lm-en" / "bin"
    assert (lm / "dict.txt").exists() and (lm / "train.bin").exists() and (lm / "test.idx").exists()
