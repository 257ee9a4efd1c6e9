"""Check that a teacher checkpoint translates with the data's dictionaries (scripts/distill-sequence-level.sh).

  python -m skd_experiments.check_teacher CHECKPOINT DATA SRC TGT

Same-sized but different dictionaries would translate into the wrong words, silently:
this stops with the criteria's own check (skd_fairseq.criterions.teacher) and its message.
"""

import argparse
import sys

from skd_fairseq.criterions.teacher import check_teacher_data


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("data", help="a fairseq-preprocess output directory")
    parser.add_argument("source_lang")
    parser.add_argument("target_lang")
    args = parser.parse_args()
    try:
        check_teacher_data(args.checkpoint, args.data, args.source_lang, args.target_lang, flag="--teacher")
    except (OSError, ValueError) as err:
        sys.exit(f"distill-sequence-level: {err}")


if __name__ == "__main__":
    main()
