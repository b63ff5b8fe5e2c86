"""Policy engines: Rego evaluated in-process (regopy, or regorus) or by an OPA server.

Each engine answers one question, the value of ``data.<package>.<rule>`` for an input
document, and reports every failure of its own (a module that does not compile, an
evaluation error, an HTTP error, an answer of the wrong shape) as a
:class:`~guards.errors.PolicyError`. Anything else that escapes is a programming error.

regopy (rego-cpp) has quirks the code below works around:

* an ``Output`` that is not ``ok()`` must never be printed or inspected: rego-cpp aborts
  the process. Only ``ok()`` is asked, and the message is ours.
* an undefined result comes back as one result with no expressions (or as no result).
* a query naming a function (a rule with arguments) yields an output that is not JSON, so
  ``Output`` raises ``ValueError`` while decoding it.
* an interpreter is not thread-safe: each thread gets its own, compiled once.

regorus (opt-in) is in :mod:`guards.policy.regorus`.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from guards.errors import PolicyError
from guards.policy.bundle import PolicyBundle

ENTRYPOINTS = ("decision", "approval_denied")
"""The rules planbound evaluates: a plan's decision, and a reviewer's authority."""

EngineName = Literal["regopy", "regorus"]
"""The in-process engines: regopy (rego-cpp, the default) or regorus (opt-in)."""

_PACKAGE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _checked_package(package: str) -> str:
    if not _PACKAGE_RE.fullmatch(package):
        raise PolicyError(f"{package!r} is not a Rego package name (e.g. planbound.retail)")
    return package


class Engine(Protocol):
    """Evaluates one rule of the policy package against an input document."""

    @property
    def package(self) -> str:
        """The Rego package that holds the entry points, e.g. ``planbound.retail``."""
        ...

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """Return the value of ``data.<package>.<rule>`` for ``document``.

        Raises:
            PolicyError: on any failure of the engine, including an undefined rule.
        """
        ...


# In-process (regopy) ------------------------------------------------------------------------


def _rego_error(exc: Exception) -> str:
    """Shorten a rego-cpp error (an S-expression dump) to its first message and place."""
    text = str(exc)
    messages = re.findall(r"\(errormsg \d+:([^)]*)\)", text)
    where = re.findall(r"\(error \d+:([^|\s]+)\|", text)
    if messages:
        place = f" in {where[0]}" if where else ""
        return f"{messages[0].strip()}{place}"
    return text.splitlines()[0] if text else type(exc).__name__


def _rego_failures() -> tuple[type[Exception], ...]:
    """The exceptions regopy raises for its own failures (imported on first use)."""
    from regopy import RegoError

    return (RegoError, ValueError)


@dataclass(frozen=True)
class CompiledRule:
    """One rule as the Rego compiler planned it.

    Attributes:
        package: The rule's package, e.g. ``planbound.retail_test``.
        name: The rule's name.
        module: The file that defines it.
        line: The line where it starts (orders rules as written).
        arity: How many arguments it takes (0 for a rule that is not a function).
        definitions: How many bodies define it (``default`` and ``else`` not counted).
    """

    package: str
    name: str
    module: str
    line: int
    arity: int
    definitions: int


def _first_location(node: Any) -> tuple[int, int] | None:
    """Return the ``(file, row)`` of the first statement under ``node`` that has one."""
    if isinstance(node, dict):
        if isinstance(node.get("file"), int) and isinstance(node.get("row"), int):
            return node["file"], node["row"]
        values: Iterable[Any] = node.values()
    elif isinstance(node, list):
        values = node
    else:
        return None
    for value in values:
        found = _first_location(value)
        if found is not None:
            return found
    return None


def _planned_rule(func: dict[str, Any], files: list[str]) -> CompiledRule:
    """Describe the rule one planned function computes."""
    name = func.get("name")
    where = _first_location(func.get("blocks"))
    if where is None or not 0 <= where[0] < len(files):
        raise PolicyError(f"the compiled policy plan does not say where {name} is defined")
    path = [str(p) for p in func["path"][1:]]
    blocks = func.get("blocks") or []
    return CompiledRule(
        package=".".join(path[:-1]),
        name=path[-1],
        module=files[where[0]],
        line=where[1] + 1,  # the plan counts rows from 0
        # the parameters are the input and data documents, then one per argument
        arity=max(len(func.get("params", [])) - 2, 0),
        # each body of the rule is one block statement at the top of its function
        definitions=sum(
            1 for b in blocks for st in b.get("stmts", []) if st.get("type") == "BlockStmt"
        ),
    )


def _planned_rules(plan: Any) -> list[CompiledRule]:
    """Read the rules out of a compiled plan (OPA's intermediate representation)."""
    try:
        files = [str(f["value"]) for f in plan["static"]["files"]]
        funcs = [f for f in plan["funcs"]["funcs"] if isinstance(f, dict)]
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"the compiled policy plan has an unexpected shape: {exc!r}") from None
    rules: dict[tuple[str, str], CompiledRule] = {}
    for func in funcs:
        path = func.get("path")
        if not isinstance(path, list) or len(path) < 3 or "$" in "".join(map(str, path)):
            continue  # compiler-made functions (the query) have no data path
        rule = _planned_rule(func, files)
        rules.setdefault((rule.package, rule.name), rule)  # `with` makes copies, g1, g2...
    return sorted(rules.values(), key=lambda r: (r.module, r.line, r.name))


class RegoModules:
    """Rego modules loaded into per-thread regopy interpreters, compiled on first use."""

    def __init__(self, modules: Iterable[tuple[str, str]]) -> None:
        """Keep ``(file name, text)`` modules to load into each thread's interpreter."""
        self.modules = tuple(modules)
        self._local = threading.local()

    def interpreter(self) -> Any:
        """Return this thread's interpreter with every module added.

        Raises:
            PolicyError: a module does not compile.
        """
        interp = getattr(self._local, "interp", None)
        if interp is None:
            from regopy import Interpreter

            interp = Interpreter()
            for name, text in self.modules:
                try:
                    interp.add_module(name, text)
                except _rego_failures() as exc:
                    raise PolicyError(
                        f"policy {name} does not compile: {_rego_error(exc)}"
                    ) from None
            self._local.interp = interp
        return interp

    def build(self, entrypoints: Iterable[str] = (), query: str | None = None) -> Any:
        """Compile the modules for ``entrypoints`` (``pkg/path/rule``) or ``query``.

        Raises:
            PolicyError: the modules do not compile together.
        """
        interp = self.interpreter()
        try:
            bundle = interp.build(query, list(entrypoints))
        except _rego_failures() as exc:
            raise PolicyError(f"the policy does not build: {_rego_error(exc)}") from None
        if not bundle.ok():  # like a failed output, a failed bundle is not inspected
            raise PolicyError("the policy does not build")
        return bundle

    def rules(self) -> list[CompiledRule]:
        """Return every rule the compiler planned, in file and line order.

        regopy has no call that lists rules (no parser or AST access; a bundle's node is
        opaque), so the compiled bundle is saved in its JSON form, whose ``plan.json`` is
        OPA's intermediate representation: each rule is a function with its data path,
        its parameters, one block per body, and the file and line of its statements.

        Raises:
            PolicyError: the modules do not compile, or the plan cannot be read.
        """
        bundle = self.build(query="x := true")
        failures: tuple[type[Exception], ...] = (*_rego_failures(), OSError)
        with tempfile.TemporaryDirectory(prefix="planbound-rego-") as folder:
            try:
                self.interpreter().save_bundle(folder, bundle)
                plan = json.loads((Path(folder) / "plan.json").read_text(encoding="utf-8"))
            except failures as exc:
                raise PolicyError(f"the compiled policy plan cannot be read: {exc}") from None
        return _planned_rules(plan)

    def evaluate(
        self, bundle: Any, entrypoint: str, document: Mapping[str, Any]
    ) -> tuple[bool, Any]:
        """Evaluate an entry point (``pkg/path/rule``) of a compiled bundle for ``document``.

        Returns:
            ``(True, value)``, or ``(False, None)`` when the rule is undefined.

        Raises:
            PolicyError: the engine failed (the reason is ours: a failed output is not read).
        """
        interp = self.interpreter()
        where = "data." + entrypoint.replace("/", ".")
        term = json.dumps(document)
        try:
            interp.set_input_term(term)
            output = interp.query_bundle_entrypoint(bundle, entrypoint)
        except _rego_failures() as exc:
            raise PolicyError(f"the Rego engine failed on {where}: {_rego_error(exc)}") from None
        if not output.ok():  # never print or inspect a failed output: rego-cpp aborts
            raise PolicyError(f"the Rego engine could not evaluate {where}")
        if len(output) == 0 or not output[0].expressions:
            return False, None
        return True, output[0].expressions[0]


class InProcessEngine:
    """What the in-process engines share: the bundle, its package and the entry points."""

    def __init__(self, bundle: PolicyBundle, package: str) -> None:
        """Keep ``bundle`` and its checked ``package``.

        Raises:
            PolicyError: ``package`` is not a package name.
        """
        self.bundle = bundle
        self._package = _checked_package(package)

    @property
    def package(self) -> str:
        """The Rego package of the entry points."""
        return self._package

    def _entrypoint(self, rule: str) -> str:
        """``data.<package>.<rule>`` for an entry point.

        Raises:
            PolicyError: ``rule`` is not one of :data:`ENTRYPOINTS`.
        """
        if rule not in ENTRYPOINTS:
            raise PolicyError(f"{rule!r} is not a policy entry point ({', '.join(ENTRYPOINTS)})")
        return f"data.{self._package}.{rule}"


class RegoEngine(InProcessEngine):
    """In-process evaluation with regopy (rego-cpp); no server needed."""

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
            PolicyError: ``package`` is not a package name.
        """
        super().__init__(bundle, package)
        self._base = package.replace(".", "/")
        self.modules = RegoModules((*bundle.modules, *extra_modules))
        self._local = threading.local()

    def _compiled(self) -> Any:
        """The bundle compiled once for the entry points (per thread, like the interpreter)."""
        compiled = getattr(self._local, "compiled", None)
        if compiled is None:
            compiled = self.modules.build([f"{self._base}/{rule}" for rule in ENTRYPOINTS])
            self._local.compiled = compiled
        return compiled

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """Evaluate ``data.<package>.<rule>`` in-process (compiled once per thread)."""
        path = self._entrypoint(rule)
        defined, value = self.modules.evaluate(self._compiled(), f"{self._base}/{rule}", document)
        if not defined:
            raise PolicyError(f"{path} is undefined for this input")
        return value


# OPA server -----------------------------------------------------------------------------------


def checked_opa_url(url: str) -> httpx.URL:
    """Return ``url`` parsed, if it is an ``http(s)://host[:port]`` URL.

    Raises:
        PolicyError: the URL is malformed, has another scheme, or names no host.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise PolicyError(f"OPA URL {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise PolicyError(f"OPA URL {url!r} must start with http:// or https://", source=url)
    if not parsed.host:
        raise PolicyError(f"OPA URL {url!r} names no host", source=url)
    return parsed


class OpaEngine:
    """Evaluation by an OPA server over its REST data API (``POST /v1/data/<path>``).

    The client does not retry: a failed query is a ``PolicyError`` and the verifier fails
    closed; retrying is the caller's decision.
    """

    def __init__(self, url: str, *, package: str, timeout_s: float = 5.0) -> None:
        """Point at an OPA server, e.g. ``http://127.0.0.1:8181``.

        Args:
            url: The server's base URL (``http`` or ``https``).
            package: The Rego package of the entry points, e.g. ``planbound.retail``.
            timeout_s: Seconds to connect, send and read before giving up.

        Raises:
            PolicyError: the URL or the package name is refused.
        """
        self.url = str(checked_opa_url(url)).rstrip("/")
        self._package = _checked_package(package)
        self.timeout_s = timeout_s
        self._client = httpx.Client(timeout=timeout_s)

    @property
    def package(self) -> str:
        """The Rego package of the entry points."""
        return self._package

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """Evaluate ``data.<package>.<rule>`` on the server."""
        endpoint = f"{self.url}/v1/data/{self._package.replace('.', '/')}/{rule}"
        where = f"OPA at {endpoint}"
        try:
            response = self._client.post(endpoint, json={"input": document})
        except httpx.TimeoutException:
            raise PolicyError(
                f"{where} is unreachable: no answer within {self.timeout_s:g}s", source=self.url
            ) from None
        except httpx.TransportError as exc:
            raise PolicyError(f"{where} is unreachable: {exc}", source=self.url) from None
        if response.is_error:
            raise PolicyError(
                f"{where} answered HTTP {response.status_code}{_opa_message(response)}",
                source=self.url,
            )
        try:
            answer = response.json()
        except ValueError:
            raise PolicyError(
                f"{where} answered something that is not JSON", source=self.url
            ) from None
        if not isinstance(answer, dict):
            raise PolicyError(f"{where} answered JSON that is not an object", source=self.url)
        if "result" not in answer:
            raise PolicyError(f"{where}: data.{self._package}.{rule} is undefined", source=self.url)
        return answer["result"]


def _opa_message(response: httpx.Response) -> str:
    """OPA's own error message (``{"code": ..., "message": ...}``), if the body has one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message}" if isinstance(message, str) and message else ""
