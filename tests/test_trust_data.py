"""Issue 12, property-based: corrupted TSV files are either read exactly or refused in one line naming the file,
and reading never changes a file.

Hypothesis writes a training file of a few rows (pair and single-sentence tasks, CoLA's headerless layout,
STS-B's scores), corrupts it (truncation, bytes that are not UTF-8, an extra or a missing field, a label outside
the task's set) and loads it. The expected rows come from an independent reading of the same bytes with Python's
``csv`` module; the data folder is hashed before and after.
"""

import csv
import hashlib
import io
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrcbert import data as D
from lrcbert.config import load_config
from lrcbert.tasks import COLA_COLUMNS, get_task

pytestmark = pytest.mark.faults
TASKS = ("rte", "sst2", "cola", "stsb")
HEADERS = {
    "rte": ["index", "sentence1", "sentence2", "label"],
    "sst2": ["sentence", "label"],
    "stsb": ["index", "genre", "sentence1", "sentence2", "score"],
}
TEXT = st.text(alphabet="abcdeXYZ .,'!é-0123", min_size=1, max_size=12)


@st.composite
def tsv_file(draw):
    """(task, original bytes, corrupted bytes, what was done)."""
    task = get_task(draw(st.sampled_from(TASKS)))
    n = draw(st.integers(1, 6))
    rows = []
    for i in range(n):
        label = f"{draw(st.floats(0, 5)):.3f}" if task.is_regression else draw(st.sampled_from(task.labels))
        values = {
            "index": str(i),
            "genre": "news",
            "source": "gj04",
            "original_label": "",
            task.text_a: draw(TEXT),
            task.label_col: label,
        }
        if task.text_b:
            values[task.text_b] = draw(TEXT)
        rows.append(values)
    header = list(COLA_COLUMNS) if task.name == "cola" else HEADERS[task.name]
    lines = ([] if task.name == "cola" else [header]) + [[r[c] for c in header] for r in rows]
    original = "".join("\t".join(x) + "\n" for x in lines).encode()
    kind = draw(st.sampled_from(["none", "truncate", "bad_bytes", "extra_field", "missing_field", "bad_label"]))
    data = original
    first = 0 if task.name == "cola" else 1  # index of the first data row in ``lines``
    if kind == "truncate":
        data = original[: draw(st.integers(0, len(original) - 1))]
    elif kind == "bad_bytes":
        at = draw(st.integers(0, len(original)))
        data = original[:at] + draw(st.sampled_from([b"\xff", b"\x80", b"\xc3(", b"\xe9t\xe9"])) + original[at:]
    else:
        k = draw(st.integers(first, len(lines) - 1))
        row = list(lines[k])
        if kind == "extra_field":
            row.append(draw(TEXT))
        elif kind == "missing_field":
            row.pop(draw(st.integers(0, len(row) - 1)))
        else:
            bad = ["7.5", "-2", "nan", "inf", "", "x"] if task.is_regression else ["maybe", "", "2", "Entailment"]
            row[header.index(task.label_col)] = draw(st.sampled_from(bad))
        lines = lines[:k] + [row] + lines[k + 1 :]
        data = "".join("\t".join(x) + "\n" for x in lines).encode()
    return task, data, kind


def reference_rows(task, data: bytes):
    """The rows a correct reader returns for ``data``, or None if it must refuse the file (independent of
    lrcbert.data: Python's csv module, no quoting)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE) if r]
    if task.name != "cola":
        if not rows:
            return None
        header, rows = rows[0], rows[1:]
    else:
        header = list(COLA_COLUMNS)
    needed = [task.text_a, task.label_col] + ([task.text_b] if task.text_b else [])
    if not rows or any(c not in header for c in needed) or any(len(r) != len(header) for r in rows):
        return None
    out = []
    for r in rows:
        v = dict(zip(header, r))
        raw = v[task.label_col]
        if task.is_regression:
            try:
                label = float(raw)
            except ValueError:
                return None
            if not (math.isfinite(label) and 0 <= label <= 5):
                return None
        elif raw in task.labels:
            label = task.labels.index(raw)
        else:
            return None
        out.append((v[task.text_a], v[task.text_b] if task.text_b else None, label))
    return out


def digest(folder: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(tsv_file())
def test_a_corrupted_tsv_is_read_exactly_or_refused_in_one_line_naming_the_file(case):
    task, data, kind = case
    with tempfile.TemporaryDirectory(prefix="trust-run-tsv-") as tmp:
        root = Path(tmp)
        path = root / task.folder / task.files["train"]
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        before = digest(root)
        expected = reference_rows(task, data)
        cfg = load_config(base={"task": task.name, "data": {"source": "tsv", "path": str(root)}})
        try:
            ds = D.load_split(cfg, task, "train")
        except D.DataError as e:
            message = str(e)
            assert expected is None, f"{kind}: refused a file the reference reads: {message}"
            assert message.startswith(str(path)) and "\n" not in message, message
        else:
            assert expected is not None, f"{kind}: read a file the reference refuses"
            got = list(zip(ds["text_a"], ds["text_b"] if task.text_b else [None] * len(ds), ds["label"]))
            assert got == expected
        assert digest(root) == before
