"""The import contract of pyproject.toml ([tool.importlinter], checked by .ci/lint): lrcbert's modules form layers
from the command line down to the losses, in no circle; and the contract catches a circle when one appears."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("importlinter", reason="import-linter is in the dev extra (.ci/lint)")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache"], cwd=root, capture_output=True, text=True, check=False
    )


def test_the_import_contract_holds():
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "2 kept, 0 broken" in r.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        ("forecast.py", "from .cli import main", "lrcbert.forecast is not allowed to import lrcbert.cli"),
        ("synthetic.py", "from .data import DataError", "lrcbert.synthetic is not allowed to import lrcbert.data"),
        ("presets.py", "from .config import ConfigError", "lrcbert.presets is not allowed to import lrcbert.config"),
    ],
)
def test_a_circle_breaks_the_contract(tmp_path, module, line, broken):
    """Each of the three circles the package had (cli-forecast, data-synthetic, config-presets), put back in a
    copy, breaks both contracts: a lower layer importing a higher one, and a cycle."""
    shutil.copytree(ROOT / "lrcbert", tmp_path / "lrcbert", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / "lrcbert" / module
    path.write_text(path.read_text() + f"\n\ndef _circle():\n    {line}  # noqa\n")
    r = lint_imports(tmp_path)
    assert r.returncode == 1 and broken in r.stdout and "0 kept, 2 broken" in r.stdout
