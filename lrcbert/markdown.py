"""Text for Markdown pages: every name and value a page takes from a configuration, a run folder or a results file
is escaped, so that a label like ``a|b`` keeps a table's cells in place and ``<img onerror=...>`` stays text."""

from __future__ import annotations


def md(value) -> str:
    """``value`` as text that Markdown shows as it is, also inside a table cell: a backslash and ``|`` escaped with a
    backslash, ``&``, ``<`` and ``>`` as HTML entities (no raw HTML reaches a page or the report)."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_table(rows, headers=(), tablefmt: str = "github") -> str:
    """A GitHub-flavoured Markdown table (tabulate) with every text cell and title escaped by ``md``; numbers stay
    numbers (tabulate aligns and formats them). ``headers="keys"`` takes the titles from dict rows."""
    from tabulate import tabulate

    if tablefmt != "github":
        raise ValueError(f"md_table writes GitHub Markdown only, not {tablefmt!r}")

    def esc(x):
        return md(x) if isinstance(x, str) else x

    if headers == "keys":
        return tabulate([{esc(k): esc(v) for k, v in r.items()} for r in rows], headers="keys", tablefmt=tablefmt)
    return tabulate([[esc(c) for c in r] for r in rows], [esc(h) for h in headers], tablefmt=tablefmt)
