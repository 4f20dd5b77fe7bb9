"""Every broken rules file fails with exit 2 and names file:line:col, the key path and the problem.

Each file's first line says what it must produce: ``# expect: LINE:COL PATH | MESSAGE``
(PATH ``-`` means the error is not tied to a key, e.g. YAML syntax).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segsync.cli import app
from segsync.config import load_rules
from segsync.errors import ConfigError

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S+) \| ?(.*)$")


def _expectation(path: Path) -> tuple[int, int, str, str]:
    match = _EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert match, f"{path.name}: first line must be '# expect: LINE:COL PATH | MESSAGE'"
    line, col, key, message = match.groups()
    return int(line), int(col), key, message.strip()


def test_there_are_enough_broken_files():
    assert len(BROKEN) >= 30


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_is_located(path: Path, monkeypatch):
    monkeypatch.delenv("SEGSYNC_TEST_SURELY_UNSET", raising=False)
    line, col, key, message = _expectation(path)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    issue = info.value.issues[0]
    assert issue.file == str(path)
    assert (issue.line, issue.column) == (line, col), str(issue)
    assert issue.path == ("" if key == "-" else key), str(issue)
    assert message in issue.message, str(issue)


@pytest.mark.parametrize("path", BROKEN[:5], ids=[p.stem for p in BROKEN[:5]])
def test_check_config_exits_2_with_location(path: Path):
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    line, col, _key, _message = _expectation(path)
    assert f"{path}:{line}:{col}:" in result.output.replace("\n", "")
