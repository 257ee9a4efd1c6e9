from setuptools import find_packages, setup

setup(
    name="skd-fairseq",
    version="0.1.0",
    description="Self-knowledge distillation (Hahn & Choi, RANLP 2019) as a fairseq plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["skd_fairseq", "skd_fairseq.*"]),
    scripts=["bin/skd-fairseq-user-dir"],
    entry_points={
        "console_scripts": [
            "skd-fairseq-inspect=skd_fairseq.inspection:main",
            # The experiment tools a user runs by hand (the shell scripts run the others with python -m).
            "skd-fairseq-tables=skd_fairseq.experiments.make_tables:main",
            "skd-fairseq-archive-runs=skd_fairseq.experiments.archive_runs:main",
            "skd-fairseq-choose-epochs=skd_fairseq.experiments.choose_epochs:main",
            "skd-fairseq-cut-run=skd_fairseq.experiments.cut_run:main",
            "skd-fairseq-validation-perplexity=skd_fairseq.experiments.validation_perplexity:main",
            "skd-fairseq-average-checkpoints=skd_fairseq.experiments.average_checkpoints:main",
        ]
    },
    python_requires=">=3.10",
    install_requires=[
        # Upstream fairseq with the Python 3.11 import fix (see README, "Why ve-fairseq").
        "ve-fairseq==0.12.3",
        # Capped so pip never swaps in a newer (CUDA, several GB) build behind the user's back.
        "torch>=2.4,<=2.13.0",
        "sacrebleu>=2.3",
        "sentencepiece>=0.1.99",
        "sacremoses>=0.0.53",
        "subword-nmt>=0.3.8",  # BPE of fairseq's IWSLT'14 / WMT'14 recipes
        "matplotlib>=3.5",  # skd-fairseq-tables --plot
        "scipy>=1.7",  # skd-fairseq-tables --significance: the paired t-test over seeds
        "tabulate>=0.8.9",  # the Markdown tables (also a dependency of sacrebleu)
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3.5"],  # scripts/test.sh runs one worker per core
        "bench": ["faiss-cpu>=1.7"],  # benchmarks/bench_topk.py compares against faiss
    },
)
