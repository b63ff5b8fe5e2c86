"""A second domain (tests/lending) through the same graph: plan, verify, approve, execute, undo.

Nothing outside its folder names it: it is plugged in as a :class:`~tools.domain.DomainPlugin`
and runs on SQLite and PostgreSQL with its own table, Rego package and template.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from answering import naming
from lending import DOMAIN
from lending.store import export

from graph.runner import Runner
from graph.services import Services
from graph.settings import Settings
from guards.policy import PolicyBundle, run_tests

DATA = {
    "members": [
        {"member_id": "m1", "email": "ann@example.com"},
        {"member_id": "m2", "email": "bob@example.com"},
    ],
    "books": [
        {"book_id": "B100", "title": "Dune", "lent_to": None},
        {"book_id": "B101", "title": "Emma", "lent_to": "m2"},
        {"book_id": "B102", "title": "Ulysses", "lent_to": None},
    ],
}
LIBRARIAN = {"decisions": [{"type": "approve"}], "reviewer": "lena", "role": "librarian"}


@pytest.fixture(params=["sqlite", "postgres"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    uri = request.getfixturevalue("pg_uri") if request.param == "postgres" else None
    settings = Settings.load(home=tmp_path / "home", database_uri=uri)
    services = Services(settings, domain=DOMAIN)
    services.seed(DATA)
    yield Runner(services=services)
    services.stores.close()


def books(runner: Runner) -> dict[str, Any]:
    stores = runner.stores
    with stores.lock:
        return {b["book_id"]: b["lent_to"] for b in export(stores.domain)["books"]}


def test_a_request_is_planned_from_the_domain_template_approved_and_executed(
    runner: Runner,
) -> None:
    first = runner.start(request="I'm ann@example.com and I would like to borrow B100.")
    assert first["status"] == "awaiting_approval", first
    assert first["plan"]["template"] == "lend_book@1"
    assert [s["tool"] for s in first["plan"]["steps"]] == [
        "find_member_by_email",
        "get_book",
        "lend_book",
    ]
    assert first["pending"][0]["reason"].endswith("[loans.need_approval]")
    assert books(runner)["B100"] is None  # nothing ran before the approval

    # The domain's own approval rule: a retail "reviewer" is not a librarian.
    with pytest.raises(Exception, match="needs a librarian"):
        runner.resume(first["thread_id"], naming(first, {**LIBRARIAN, "role": "reviewer"}))
    done = runner.resume(first["thread_id"], naming(first, LIBRARIAN))
    assert done["status"] == "completed", done
    assert books(runner) == {"B100": "m1", "B101": "m2", "B102": None}


def test_the_domain_policy_denies_before_anything_runs(runner: Runner) -> None:
    out = runner.start(request="I'm ann@example.com, please lend me B101.")
    assert out["status"] == "refused"
    assert "book B101 is already lent to m2 [book.available]" in out["error"]
    assert books(runner)["B101"] == "m2"


def test_rollback_and_compensation_restore_the_domain_records(runner: Runner) -> None:
    first = runner.start(request="I'm ann@example.com and I would like to borrow B102.")
    done = runner.resume(first["thread_id"], naming(first, LIBRARIAN))
    assert done["status"] == "completed" and books(runner)["B102"] == "m1"
    history = list(runner.history(done["thread_id"]))
    before_execute = next(r for r in history if r["next"] == ["execute"] and not r["steps_done"])
    report = runner.rollback(done["thread_id"], before_execute["checkpoint_id"])
    assert report["status"] == "rolled_back" and report["undone"], report
    assert books(runner)["B102"] is None

    # A step failing after the loan: the loan is compensated and the run ends rolled back.
    plan = [
        {"name": "find_member_by_email", "arguments": {"email": "ann@example.com"}},
        {"name": "lend_book", "arguments": {"book_id": "B100", "member_id": "$s1"}},
        {"name": "get_book", "arguments": {"book_id": "B999"}},
    ]
    paused = runner.start(explicit_plan=plan)
    assert paused["status"] == "awaiting_approval"
    out = runner.resume(paused["thread_id"], naming(paused, LIBRARIAN))
    assert out["status"] == "rolled_back", out
    assert "book not found" in out["error"]
    assert books(runner)["B100"] is None


def test_the_domain_ships_its_own_rego_tests() -> None:
    results = run_tests(PolicyBundle.load(DOMAIN.policy_dir))
    assert [(r.name, r.passed) for r in results] == [
        ("test_a_lent_book_is_denied", True),
        ("test_a_free_book_is_not_denied", True),
    ]
