"""The suite's ecosystem plumbing: the workflow scripts' common start (job_log), figure styles, model cards and
the push command, experiment trackers, logging."""
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))


def _smk(log: Path):
    return types.SimpleNamespace(log=[str(log)])


def test_job_log_sends_prints_and_the_traceback_to_the_rule_log(tmp_path, capsys):
    from results_lib import job_log
    log = tmp_path / "job.log"
    before = sys.stdout, sys.stderr
    with pytest.raises(KeyError, match="missing-key"), job_log(_smk(log)) as smk:
        assert smk.log == [str(log)]
        print("to stdout")
        print("to stderr", file=sys.stderr)
        {}["missing-key"]
    assert (sys.stdout, sys.stderr) == before
    text = log.read_text()
    assert text.startswith("to stdout\nto stderr\nTraceback")
    assert text.rstrip().endswith("KeyError: 'missing-key'")
    out = capsys.readouterr()
    assert "to stdout" not in out.out and "to stderr" not in out.err


def test_series_styles_nest_coinciding_curves():
    from results_lib import series_style
    styles = [series_style(k, 5) for k in range(5)]
    assert len({s["marker"] for s in styles}) == 5
    sizes, widths = [s["markersize"] for s in styles], [s["linewidth"] for s in styles]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 5        # each later one inside
    assert widths == sorted(widths, reverse=True) and widths[-1] == 1.0
