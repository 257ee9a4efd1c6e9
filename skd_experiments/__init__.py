"""The experiment machinery: training wrappers, evaluation, result files and tables.

The shell entry points in ``scripts/`` run these modules (``python -m
skd_experiments.MODULE``) and setup.py installs the ones a user calls as
``skd-fairseq-*`` commands. The plugin's criteria never import this package, so
``fairseq-train --user-dir`` loads none of it.
"""
