"""The policy's Rego unit tests: every ``test_*`` rule of the ``*_test.rego`` files, in-process.

Tests are found by the Rego compiler, not by reading the source: the bundle and its test
files are compiled together and the compiled plan lists every rule with its package, file
and line, whatever form its head takes (``test_x if {...}``, ``test_x := ...``,
``test_x contains ...``, ``test_x {...}``, ``test_x[name] if {...}``).

A test passes as under ``opa test``: its value is ``true``, or, for a rule of named cases
(``test_x[name] if {...}``), every case is ``true``. Anything else fails with the reason:
an undefined or false rule, another value, a set (a ``contains`` rule is never a test that
passes; one failing member would just be missing from it), a rule with arguments, or an
evaluation error. A test name defined by several bodies fails too: the bodies are
alternatives, so one that holds would hide one that does not (``opa test`` runs them
apart). A named case whose body does not hold is absent rather than false, so it cannot
be reported; give such cases a value (``test_x[name] := ok if {...}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guards.errors import PolicyError
from guards.policy.bundle import PolicyBundle
from guards.policy.engines import CompiledRule, RegoModules

TEST_PREFIX = "test_"
"""Rules whose name starts so, in a test file, are unit tests."""


@dataclass(frozen=True)
class RegoTest:
    """The outcome of one ``test_*`` rule.

    Attributes:
        module: The test file.
        name: The rule's name.
        passed: Whether the test passed.
        error: Why it failed (None when it passed).
    """

    module: str
    name: str
    passed: bool
    error: str | None = None


def discover(bundle: PolicyBundle, program: RegoModules | None = None) -> list[CompiledRule]:
    """Return the test rules of the bundle's test files, in file and line order.

    Raises:
        PolicyError: a module or test file does not compile.
    """
    program = program or RegoModules((*bundle.modules, *bundle.tests))
    test_files = {name for name, _ in bundle.tests}
    return [r for r in program.rules() if r.module in test_files and r.name.startswith(TEST_PREFIX)]


def _failure(value: Any) -> str | None:
    """Why a test rule's value is not a pass (None when it is one)."""
    if value is True:
        return None
    if isinstance(value, list):
        return "a set (a `contains` rule) never passes: write `test_... if { ... }`"
    if isinstance(value, dict):
        if not value:
            return "no case was defined"
        failing = sorted(str(k) for k, v in value.items() if v is not True)
        return f"cases not true: {', '.join(failing)}" if failing else None
    return f"evaluated to {value!r}, not true"


def run_tests(bundle: PolicyBundle) -> list[RegoTest]:
    """Run every ``test_*`` rule of the bundle's ``*_test.rego`` files, in-process.

    Raises:
        PolicyError: a module or test file does not compile.
    """
    program = RegoModules((*bundle.modules, *bundle.tests))
    tests = discover(bundle, program)
    entrypoints = {r: f"{r.package.replace('.', '/')}/{r.name}" for r in tests if not r.arity}
    compiled = program.build(entrypoints.values()) if entrypoints else None
    outcomes: list[RegoTest] = []
    for rule in tests:
        if rule not in entrypoints:
            outcomes.append(RegoTest(rule.module, rule.name, False, "a test takes no arguments"))
            continue
        try:
            defined, value = program.evaluate(compiled, entrypoints[rule], {})
        except PolicyError as exc:
            outcomes.append(RegoTest(rule.module, rule.name, False, str(exc)))
            continue
        error = _failure(value) if defined else "undefined (its body did not hold)"
        if error is None and rule.definitions > 1 and not isinstance(value, dict):
            # the bodies are alternatives: one that holds would hide one that fails
            error = f"defined {rule.definitions} times: give each body its own test name"
        outcomes.append(RegoTest(rule.module, rule.name, error is None, error))
    return outcomes
