"""Bad inputs to the real ``planbound`` command: each gets a clear error, never a traceback.

Every case runs the installed console script in its own process on its own data directory
(a copy of one seeded home with a run paused for review), with ``--json``: the command must
exit 2 and print exactly one JSON object whose ``error`` says what is wrong, and nothing may
be lost: the paused run is still awaiting approval afterwards.

Cases that need a directory the command may not write run with the file-permission override
capabilities dropped (``setpriv``) when the tests run as root, since root writes anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PLANBOUND = str(Path(sys.executable).parent / "planbound")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ORDER = "#W2974929"
EMAIL = "fatima.anderson1447@example.com"
REQUEST = f"I'm {EMAIL}. Cancel order {ORDER}, reason: no longer needed."
PAUSED = "paused"
"""The thread of the seeded home that awaits approval of its cancellation (s3)."""


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PLANBOUND_") and k not in ("DATABASE_URI", "OPA_URL")
    }
    env["PLANBOUND_HOME"] = str(home)
    env.update(extra)
    return env


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold (root ignores them)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def planbound(
    home: Path,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), PLANBOUND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env if env is not None else environment(home),
        timeout=timeout,
        check=False,
    )


def one_object(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The command's one JSON object; no traceback on standard error."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout + result.stderr
    document = json.loads(lines[0])
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded home with thread ``paused`` awaiting approval of the cancellation."""
    home = tmp_path_factory.mktemp("seeded") / "home"
    assert planbound(home, "seed", "--json").returncode == 0
    run = planbound(home, "run", REQUEST, "--thread", PAUSED, "--json")
    assert one_object(run)["status"] == "awaiting_approval"
    return home


@dataclass
class Case:
    """One bad input: the command, how the world is prepared, what the error must say.

    ``setup(home, tmp)`` prepares the copied home and returns the home to use; ``env``
    values may name ``{home}`` and ``{tmp}``.
    """

    name: str
    args: list[str]
    says: list[str]
    setup: Callable[[Path, Path], Path] | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    unprivileged: bool = False
    seeded: bool = True


def read_only_home(home: Path, tmp: Path) -> Path:
    home.chmod(0o555)
    return home


def home_in_read_only_dir(home: Path, tmp: Path) -> Path:
    parent = tmp / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    return parent / "home"


def home_is_file(home: Path, tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("not a directory\n")
    return path


def under_proc(home: Path, tmp: Path) -> Path:
    return Path("/proc/planbound-home")


def not_a_database(name: str) -> Callable[[Path, Path], Path]:
    def damage(home: Path, tmp: Path) -> Path:
        (home / name).write_bytes(b"this is not a database\n" * 100)
        return home

    return damage


def truncated(name: str) -> Callable[[Path, Path], Path]:
    def damage(home: Path, tmp: Path) -> Path:
        path = home / name
        os.truncate(path, path.stat().st_size // 3)
        return home

    return damage


def empty_home(home: Path, tmp: Path) -> Path:
    return tmp / "empty-home"


def write_file(name: str, text: str) -> Callable[[Path, Path], Path]:
    def put(home: Path, tmp: Path) -> Path:
        (tmp / name).write_text(text)
        return home

    return put


def make_dir(name: str) -> Callable[[Path, Path], Path]:
    def put(home: Path, tmp: Path) -> Path:
        (tmp / name).mkdir()
        return home

    return put


NO_DEPENDS = json.dumps(
    {
        "goal": "cancel an order",
        "steps": [
            {"id": "s1", "tool": "find_user_id_by_email", "args": {"email": EMAIL}},
            {"id": "s2", "tool": "get_order_details", "args": {"order_id": ORDER}},
            {
                "id": "s3",
                "tool": "cancel_pending_order",
                "args": {"order_id": ORDER, "reason": "no longer needed"},
            },
        ],
    }
)
DEEP = "[" * 100_000 + "]" * 100_000
LONG = "x" * 100_000
DB_BROKEN = "PLANBOUND_HOME or --home"

CASES = [
    # Storage: unwritable, read-only, not a directory, damaged.
    Case(
        "seed-read-only-home",
        ["seed"],
        ["cannot write", "checkpoints.sqlite", "writable data directory"],
        read_only_home,
        unprivileged=True,
    ),
    Case(
        "run-read-only-home",
        ["run", REQUEST],
        ["cannot write", "writable data directory"],
        read_only_home,
        unprivileged=True,
    ),
    Case(
        "seed-home-cannot-be-created",
        ["seed"],
        ["cannot create the data directory", "Permission denied", DB_BROKEN],
        home_in_read_only_dir,
        unprivileged=True,
    ),
    Case(
        "status-home-cannot-be-created",
        ["status", PAUSED],
        ["no planbound databases", "planbound seed"],
        home_in_read_only_dir,
        unprivileged=True,
    ),
    Case(
        "export-out-read-only-dir",
        ["export", "--out", "{tmp}/locked/state.json"],
        ["--out", "cannot write it", "Permission denied"],
        lambda home, tmp: (home_in_read_only_dir(home, tmp), home)[1],
        unprivileged=True,
    ),
    Case("seed-home-is-a-file", ["seed"], ["is not a directory", DB_BROKEN], home_is_file),
    Case("status-home-is-a-file", ["status", PAUSED], ["is not a directory"], home_is_file),
    Case("seed-home-under-proc", ["seed"], ["cannot create the data directory"], under_proc),
    Case(
        "status-domain-not-a-database",
        ["status", PAUSED],
        ["domain.sqlite is damaged", "file is not a database", "seed --force"],
        not_a_database("domain.sqlite"),
    ),
    Case(
        "run-domain-truncated",
        ["run", REQUEST],
        ["domain.sqlite is damaged", "malformed", "seed --force", "checkpoints.sqlite is kept"],
        truncated("domain.sqlite"),
    ),
    Case(
        "seed-domain-truncated",
        ["seed"],
        ["domain.sqlite is damaged", "seed --force"],
        truncated("domain.sqlite"),
    ),
    Case(
        "status-checkpoints-not-a-database",
        ["status", PAUSED],
        ["checkpoints.sqlite is damaged", "seed --force", "ledger and approvals are kept"],
        not_a_database("checkpoints.sqlite"),
    ),
    Case(
        "history-checkpoints-truncated",
        ["history", PAUSED],
        ["checkpoints.sqlite is damaged"],
        truncated("checkpoints.sqlite"),
    ),
    # Export.
    Case("export-before-seed", ["export"], ["planbound seed"], empty_home, seeded=False),
    Case(
        "export-out-missing-dir",
        ["export", "--out", "{tmp}/nowhere/state.json"],
        ["--out", "no such directory"],
    ),
    Case("export-out-is-a-dir", ["export", "--out", "{tmp}"], ["--out", "is a directory"]),
    # Templates are checked before a thread exists.
    Case(
        "run-templates-missing",
        ["run", REQUEST, "--thread", "new"],
        ["no such template file"],
        env={"PLANBOUND_TEMPLATES": "{tmp}/missing.yaml"},
    ),
    Case(
        "run-templates-broken-yaml",
        ["run", REQUEST, "--thread", "new"],
        ["broken.yaml"],
        write_file("broken.yaml", "templates: [unclosed\n  - {"),
        env={"PLANBOUND_TEMPLATES": "{tmp}/broken.yaml"},
    ),
    # Settings.
    Case(
        "database-uri-mysql",
        ["status", PAUSED],
        ["DATABASE_URI", "must be a postgresql:// URI", "u:***@"],
        env={"DATABASE_URI": "mysql://u:secret@db/x"},
    ),
    Case(
        "database-uri-typo",
        ["run", REQUEST],
        ["DATABASE_URI", "postgresql://"],
        env={"DATABASE_URI": "postgresq://postgres@127.0.0.1/planbound"},
    ),
    Case("database-uri-garbage", ["seed"], ["DATABASE_URI"], env={"DATABASE_URI": "garbage"}),
    Case(
        "planbound-database-uri-mysql",
        ["status", PAUSED],
        ["PLANBOUND_DATABASE_URI", "postgresql://"],
        env={"PLANBOUND_DATABASE_URI": "mysql://db/x"},
    ),
    Case(
        "threshold-nan",
        ["status", PAUSED],
        ["PLANBOUND_APPROVAL_THRESHOLD", "nan"],
        env={"PLANBOUND_APPROVAL_THRESHOLD": "nan"},
    ),
    Case(
        "max-steps-negative",
        ["run", REQUEST],
        ["PLANBOUND_MAX_STEPS"],
        env={"PLANBOUND_MAX_STEPS": "-1"},
    ),
    Case(
        "policy-engine-unknown",
        ["run", REQUEST],
        ["PLANBOUND_POLICY_ENGINE", "'regopy' or 'regorus'"],
        env={"PLANBOUND_POLICY_ENGINE": "opa"},
    ),
    Case(
        "policy-engine-regorus-with-opa",
        ["status", PAUSED],
        ["OPA_URL", "PLANBOUND_POLICY_ENGINE=regorus", "both set"],
        env={"PLANBOUND_POLICY_ENGINE": "regorus", "OPA_URL": "http://127.0.0.1:9"},
    ),
    # The request: standard input, a file, the limits.
    Case("run-stdin-too-long", ["run", "-"], ["standard input", "the limit"], stdin=LONG * 10),
    Case("run-stdin-empty", ["run", "-"], ["standard input", "empty"], stdin="  \n"),
    Case(
        "run-request-file-missing",
        ["run", "--request-file", "{tmp}/nope.txt"],
        ["--request-file", "no such file"],
    ),
    Case(
        "run-request-file-too-long",
        ["run", "--request-file", "{tmp}/long.txt"],
        ["--request-file", "the limit"],
        write_file("long.txt", LONG),
    ),
    Case(
        "run-request-and-plan",
        ["run", REQUEST, "--plan", str(EXAMPLES / "cancel-steps.json")],
        ["exactly one"],
    ),
    Case("run-request-too-long", ["run", "y" * 5000], ["'request'", "limit"]),
    Case("run-actor-too-long", ["run", REQUEST, "--actor", LONG], ["'actor'", "limit"]),
    # Plans.
    Case(
        "run-plan-is-a-dir", ["run", "--plan", "{tmp}/plans"], ["is a directory"], make_dir("plans")
    ),
    Case(
        "run-plan-nested-deep",
        ["run", "--plan", "{tmp}/deep.json"],
        ["--plan"],
        write_file("deep.json", DEEP),
    ),
    Case(
        "run-plan-not-json",
        ["run", "--plan", "{tmp}/x.json"],
        ["not JSON"],
        write_file("x.json", "{"),
    ),
    # Seeding.
    Case("seed-from-a-dir", ["seed", "--from", "{tmp}"], ["--from", "is a directory"]),
    Case(
        "seed-from-wrong-types",
        ["seed", "--from", "{tmp}/bad.json"],
        ["--from"],
        write_file("bad.json", json.dumps({"users": [], "orders": 3, "products": "x"})),
    ),
    # Reviews.
    Case(
        "approve-reviewer-100k",
        ["approve", PAUSED, "--all", "--approve", "--reviewer", LONG],
        ["limit"],
    ),
    Case(
        "approve-reject-message-too-long",
        ["approve", PAUSED, "--all", "--reject", "n" * 5000, "--reviewer", "ann"],
        ["4000"],
    ),
    Case(
        "approve-edit-breaks-policy",
        ["approve", PAUSED, "--step", "s3", "--edit", '{"reason": "because"}', "--reviewer", "ann"],
        ["cancel.reason", "the review is still pending"],
    ),
    Case(
        "approve-edit-a-read-step",
        ["approve", PAUSED, "--step", "s2", "--edit", '{"reason": "x"}', "--reviewer", "ann"],
        ["s2", "not awaiting review"],
    ),
    Case(
        "approve-markup-reject",
        ["approve", "[/x]", "--all", "--reject", "[/bold] oops", "--reviewer", "ann"],
        ["[/x]"],
    ),
    Case("resume-unknown-thread", ["resume", "no-such-thread"], ["no thread"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clear_error(case: Case, seeded: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    if case.seeded:
        shutil.copytree(seeded, home)
    prefix = unprivileged() if case.unprivileged else []
    if case.setup is not None:
        home = case.setup(home, tmp_path)

    def place(text: str) -> str:
        return text.replace("{home}", str(home)).replace("{tmp}", str(tmp_path))

    env = environment(home, **{k: place(v) for k, v in case.env.items()})
    args = [place(a) for a in case.args]
    result = planbound(home, *args, "--json", stdin=case.stdin, env=env, prefix=prefix)
    document = one_object(result)
    assert result.returncode == 2, document
    assert document["status"] is None
    for words in case.says:
        assert words in document["error"], document["error"]
    if case.name.startswith("run-templates"):  # no thread was started
        status = one_object(planbound(home, "status", "new", "--json", env=env))
        assert "no thread" in status["error"]
    if case.seeded and case.setup is None and not case.env:
        left = one_object(planbound(home, "status", PAUSED, "--json"))
        assert left["status"] == "awaiting_approval"  # the paused run is untouched


def test_text_mode_errors_are_one_line_of_plain_text(seeded: Path, tmp_path: Path) -> None:
    result = planbound(tmp_path / "empty", "export")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    result = planbound(
        seeded, "status", PAUSED, env=environment(seeded, DATABASE_URI="postgresq://x")
    )
    assert result.returncode == 2 and "DATABASE_URI" in result.stderr


def test_a_read_only_home_serves_the_reading_commands(seeded: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    for path in home.iterdir():
        path.chmod(0o444)
    home.chmod(0o555)
    prefix = unprivileged()
    status = one_object(planbound(home, "status", PAUSED, "--json", prefix=prefix))
    assert status["status"] == "awaiting_approval"
    assert status["pending"][0]["refs"] == [] or status["pending"][0]["step_id"] == "s3"
    history = one_object(planbound(home, "history", PAUSED, "--json", prefix=prefix))
    assert len(history["checkpoints"]) >= 3
    exported = one_object(planbound(home, "export", "--json", prefix=prefix))
    assert exported["data"]["orders"][ORDER]["status"] == "pending"
    audit = planbound(home, "audit", status["decision_id"], "--json", prefix=prefix)
    assert audit.returncode == 0, audit.stderr
    assert sorted(p.name for p in home.iterdir()) == ["checkpoints.sqlite", "domain.sqlite"]


def test_seed_force_moves_a_damaged_file_aside(seeded: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    truncated("domain.sqlite")(home, tmp_path)
    done = one_object(planbound(home, "seed", "--force", "--json"))
    assert done["orders"] == 1000
    (moved,) = done["moved_aside"]
    assert moved.startswith(str(home / "domain.sqlite")) and ".damaged-" in moved
    assert any(p.name.startswith("domain.sqlite.damaged-") for p in home.iterdir())
    status = one_object(planbound(home, "status", PAUSED, "--json"))
    assert status["status"] == "awaiting_approval"  # checkpoints kept


def test_run_reads_the_request_from_stdin_and_from_a_file(seeded: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    run = one_object(planbound(home, "run", "-", "--json", stdin=REQUEST + "\n"))
    assert run["status"] == "awaiting_approval" and run["plan"]["goal"] == REQUEST
    request = tmp_path / "request.txt"
    request.write_text(REQUEST)
    run = one_object(planbound(home, "run", "--request-file", str(request), "--json"))
    assert run["status"] == "awaiting_approval"


def test_the_dev_servers_database_marker_is_not_an_error(seeded: Path) -> None:
    env = environment(seeded, DATABASE_URI=":memory:")
    status = one_object(planbound(seeded, "status", PAUSED, "--json", env=env))
    assert status["status"] == "awaiting_approval"


def test_a_steps_plan_without_depends_on_says_how_to_fix_it(seeded: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    plan = tmp_path / "plan.json"
    plan.write_text(NO_DEPENDS)
    run = one_object(planbound(home, "run", "--plan", str(plan), "--json"))
    assert run["status"] == "refused"
    assert "do not depend on the identity step s1" in run["hint"]
    assert '"depends_on": ["s1"]' in run["hint"] and "action list" in run["hint"]
    for example in ("cancel-steps.json", "cancel-actions.json"):
        run = one_object(planbound(home, "run", "--plan", str(EXAMPLES / example), "--json"))
        assert run["status"] == "awaiting_approval", run


def test_the_review_shows_references_read_now_and_changes(seeded: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    plan = str(EXAMPLES / "cancel-steps.json")
    run = one_object(planbound(home, "run", "--plan", plan, "--thread", "p", "--json"))
    (pending,) = run["pending"]
    assert pending["refs"] == [
        {"arg": "order_id", "ref": "$s2.order_id", "value": ORDER, "read_now": True}
    ]
    (order,) = [c for c in pending["changes"] if c["key"] == ORDER]
    assert order["fields"]["status"] == {"before": "pending", "after": "cancelled"}
    text = planbound(home, "status", "p", "--changes")
    assert '"$s2.order_id" = "#W2974929"  (read now)' in text.stdout
    assert '"pending" → "cancelled"' in text.stdout
    exported = one_object(planbound(home, "export", "--json"))
    assert exported["data"]["orders"][ORDER]["status"] == "pending"  # the trial was undone


def test_a_partial_edit_keeps_the_other_arguments(seeded: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    edit = '{"reason": "ordered by mistake"}'
    args = ["approve", PAUSED, "--step", "s3", "--edit", edit, "--reviewer", "ann", "--json"]
    done = one_object(planbound(home, *args))
    assert done["status"] == "completed", done
    (cancel,) = [s for s in done["plan"]["steps"] if s["id"] == "s3"]
    assert cancel["args"] == {"order_id": ORDER, "reason": "ordered by mistake"}


def test_status_does_not_wait_for_a_writer(seeded: Path, tmp_path: Path) -> None:
    """Another process inside a write transaction on both files: readers go on (WAL)."""
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "conns = [sqlite3.connect(p, isolation_level=None) for p in sys.argv[1:]]\n"
            "for c in conns:\n"
            "    c.execute('BEGIN IMMEDIATE')\n"
            "    c.execute('CREATE TABLE IF NOT EXISTS busy (x)')\n"
            "print('holding', flush=True)\n"
            "sys.stdin.readline()\n",
            str(home / "domain.sqlite"),
            str(home / "checkpoints.sqlite"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        # Under the 30 s a writer would wait for the lock: a reader that waited fails here.
        status = one_object(planbound(home, "status", PAUSED, "--json", timeout=25))
        assert status["status"] == "awaiting_approval"
        history = one_object(planbound(home, "history", PAUSED, "--json", timeout=25))
        assert history["checkpoints"]
        assert holder.poll() is None  # the writer still held its transaction throughout
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=10)


def wait_for(proc: subprocess.Popen[str], words: str, seconds: float = 60) -> None:
    """Read ``proc``'s standard error until a line contains ``words``."""
    assert proc.stderr is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if words in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"never saw {words!r}")


def test_a_crashed_run_says_how_to_continue_and_one_resume_wins(
    seeded: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    crash_env = environment(home, PLANBOUND_PAUSE_AT="step:s3:before_call", PLANBOUND_PAUSE_S="60")
    approve = subprocess.Popen(
        [PLANBOUND, "approve", PAUSED, "--all", "--approve", "--reviewer", "ann", "--json"],
        env=crash_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(approve, "paused at step:s3:before_call")
    approve.send_signal(signal.SIGKILL)
    approve.wait()

    status = one_object(planbound(home, "status", PAUSED, "--json"))
    # The reads and the write run in one super-step: the last checkpoint is the approval's.
    assert status["status"] == "approved"
    assert f"planbound resume {PAUSED}" in status["hint"] and "stopped mid-way" in status["hint"]

    slow_env = environment(home, PLANBOUND_PAUSE_AT="node:execute", PLANBOUND_PAUSE_S="5")
    first = subprocess.Popen(
        [PLANBOUND, "resume", PAUSED, "--json"],
        env=slow_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(first, "paused at node:execute")
    second = one_object(planbound(home, "resume", PAUSED, "--json"))
    assert "busy" in second["error"]
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0
    assert json.loads(out)["status"] == "completed"

    conn = sqlite3.connect(home / "domain.sqlite")
    (rows,) = conn.execute(
        "SELECT count(*) FROM ledger WHERE tool = 'cancel_pending_order' AND status = 'succeeded'"
    ).fetchone()
    conn.close()
    assert rows == 1
    history = one_object(planbound(home, "history", PAUSED, "--json", "--limit", "500"))
    finals = [c for c in history["checkpoints"] if c["status"] == "completed"]
    assert len(finals) == 1  # the history was written once
