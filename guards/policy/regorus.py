"""In-process Rego evaluation with regorus (Microsoft's Rust interpreter); opt-in.

It is installed by the ``regorus`` extra and has quirks of its own, worked around here:

* an ``Engine`` is bound to the thread that made it (a PyO3 ``unsendable`` class: another
  thread that touches it panics), so each thread makes and loads its own; ``clone()`` does
  not help, a clone belongs to the thread that cloned it.
* its errors are ``RuntimeError`` whose text may end in a Rust stack backtrace (when
  ``RUST_BACKTRACE`` is set); a panic is a ``PanicException``, which is not an ``Exception``.
* ``eval_rule`` returns Rego sets as Python sets, which cannot hold objects (``TypeError``),
  and an undefined rule as ``None``, like ``null``; ``eval_query_as_json`` encodes sets as
  JSON arrays, as regopy does, and an undefined result as no result.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from guards.errors import PolicyError
from guards.policy.bundle import PolicyBundle
from guards.policy.engines import InProcessEngine

REGORUS_EXTRA = "pip install 'planbound[regorus]'"
"""How regorus is installed (a third-party build of upstream's Python bindings)."""


def _regorus_error(exc: BaseException) -> str:
    """Shorten a regorus error to its message and place, without a Rust backtrace."""
    text = str(exc).split("Stack backtrace:")[0].strip()
    message = re.search(r"^error: (.+)$", text, re.MULTILINE)
    where = re.search(r"-->\s*(\S+)", text)
    if message:
        place = f" in {where.group(1)}" if where else ""
        return f"{message.group(1).strip()}{place}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first or type(exc).__name__


def _is_regorus_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is regorus's own failure (an error, or a panic of the Rust code)."""
    return isinstance(exc, RuntimeError | ValueError) or type(exc).__name__ == "PanicException"


def regorus_module() -> Any:
    """Return the ``regorus`` module.

    Raises:
        PolicyError: it is not installed (naming the extra that installs it).
    """
    try:
        import regorus
    except ImportError:
        raise PolicyError(f"the regorus policy engine is not installed: {REGORUS_EXTRA}") from None
    return regorus


class RegorusModules:
    """Rego modules loaded into per-thread regorus engines, parsed on first use."""

    def __init__(self, modules: Iterable[tuple[str, str]]) -> None:
        """Keep ``(file name, text)`` modules to load into each thread's engine.

        Raises:
            PolicyError: regorus is not installed.
        """
        self.modules = tuple(modules)
        self._regorus = regorus_module()
        self._local = threading.local()

    def engine(self) -> Any:
        """Return this thread's engine with every module added (an engine is thread-bound).

        Raises:
            PolicyError: a module does not compile.
        """
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._regorus.Engine()
            for name, text in self.modules:
                try:
                    engine.add_policy(name, text)
                except BaseException as exc:
                    if not _is_regorus_failure(exc):
                        raise
                    raise PolicyError(
                        f"policy {name} does not compile: {_regorus_error(exc)}"
                    ) from None
            self._local.engine = engine
        return engine

    def evaluate(self, path: str, document: Mapping[str, Any]) -> tuple[bool, Any]:
        """Evaluate ``path`` (``data.pkg.rule``) for ``document``; sets come back as lists.

        Returns:
            ``(True, value)``, or ``(False, None)`` when the rule is undefined.

        Raises:
            PolicyError: the engine failed, or answered in an unexpected shape.
        """
        engine = self.engine()
        term = json.dumps(document)
        try:
            engine.set_input_json(term)
            answer = json.loads(engine.eval_query_as_json(path))
        except BaseException as exc:
            if not _is_regorus_failure(exc):
                raise
            if type(exc).__name__ == "PanicException":
                self._local.engine = None  # a panicked engine is not used again
            raise PolicyError(
                f"the regorus engine failed on {path}: {_regorus_error(exc)}"
            ) from None
        try:
            results = answer.get("result", [])
            if not results:
                return False, None
            return True, results[0]["expressions"][0]["value"]
        except (AttributeError, LookupError, TypeError):
            raise PolicyError(
                f"the regorus engine answered {path} in an unexpected shape"
            ) from None


class RegorusEngine(InProcessEngine):
    """In-process evaluation with regorus (Microsoft's Rust Rego interpreter); opt-in.

    Each thread parses the modules into an engine of its own once and reuses it: a query
    sets the input and evaluates the rule.
    """

    def __init__(
        self,
        bundle: PolicyBundle,
        *,
        package: str,
        extra_modules: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Prepare an engine for ``bundle``'s ``package``.

        Args:
            bundle: The policy modules.
            package: The Rego package of the entry points, e.g. ``planbound.retail``.
            extra_modules: More ``(file name, text)`` modules (unit tests, fixtures).

        Raises:
            PolicyError: ``package`` is not a package name, or regorus is not installed.
        """
        super().__init__(bundle, package)
        self.modules = RegorusModules((*bundle.modules, *extra_modules))

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """Evaluate ``data.<package>.<rule>`` in-process (parsed once per thread)."""
        path = self._entrypoint(rule)
        defined, value = self.modules.evaluate(path, document)
        if not defined:
            raise PolicyError(f"{path} is undefined for this input")
        return value
