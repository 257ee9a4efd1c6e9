"""The project's one writer of Markdown tables (result tables, benchmark reports)."""

from tabulate import DataRow, TableFormat, tabulate

SEPARATORS = {"l": "---|", "r": "---:|"}


def markdown_table(header, rows, align=None):
    """The lines of a GitHub Markdown table ("pipe" format) with unpadded cells.

    ``align`` has one letter per column, "l" (the default) or "r". The cells are written as
    they are (strings; numbers formatted by the caller) and not padded to the column's width,
    with a "---" / "---:" rule: the format of every committed table, which padding would
    rewrite as a whole at each change of one number."""
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - set(SEPARATORS):
        raise ValueError(f"align {align!r}: give one letter, l or r, per column of {header}")
    rule = "|" + "".join(SEPARATORS[a] for a in align)
    row = DataRow("|", "|", "|")
    table_format = TableFormat(
        lineabove=None,
        linebelowheader=lambda widths, aligns: rule,
        linebetweenrows=None,
        linebelow=None,
        headerrow=row,
        datarow=row,
        padding=1,
        with_header_hide=None,
    )
    text = tabulate(
        [[str(c) for c in r] for r in rows],
        [str(h) for h in header],
        tablefmt=table_format,
        stralign=None,
        numalign=None,
        disable_numparse=True,
    )
    return text.split("\n")
