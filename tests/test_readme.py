"""The README's "Using it" block runs as written, top to bottom, in a clean directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def using_it_block() -> str:
    """The first ```bash block of the README's "Using it" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found is not None, "no bash block under 'Using it'"
    return found.group(1)


def test_the_using_it_block_runs_as_a_script(tmp_path: Path) -> None:
    script = using_it_block()
    assert "planbound seed" in script and "--plan examples/" in script
    # A clean directory holding what a clone has after the README's first command: the
    # virtual environment at .venv and the shipped examples.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PLANBOUND_", "VIRTUAL_ENV")) and k not in ("DATABASE_URI",)
    }
    env["PATH"] = "/usr/bin:/bin"  # `planbound` comes from activating the venv, not from here
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    cancelled = state["orders"]["#W2974929"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "ordered by mistake"  # the partial edit applied
    assert (tmp_path / ".planbound" / "domain.sqlite").is_file()
    assert "status completed" in result.stdout
