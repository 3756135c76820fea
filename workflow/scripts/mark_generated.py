#!/usr/bin/env python3
"""``mark_generated.py DATA_SOURCE PAGE.md``: when DATA_SOURCE is ``synthetic`` (the workflow's data were
generated), put the smoke-test warning under the first line (the title) of a Markdown page that another program
wrote (``lrcbert bench``'s results/bench.md), so that no page made from generated data can pass for a real one."""

import sys
from pathlib import Path

from lrcbert.results import SMOKE_NOTE, write_table


def mark(page: str) -> None:
    lines = Path(page).read_text(encoding="utf-8").splitlines()
    if SMOKE_NOTE not in lines:
        lines[1:1] = ["", SMOKE_NOTE]
    write_table("\n".join(lines) + "\n", page)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if sys.argv[1] == "synthetic":
        mark(sys.argv[2])
