"""Policy bundles: the ``.rego`` modules of one folder, versioned by their content hash."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from guards.errors import PolicyError

BundlePath = str | os.PathLike[str] | Traversable
"""Where a bundle can be read from: a directory path or a package resource folder."""

TEST_SUFFIX = "_test.rego"
"""Files whose name ends so hold the policy's unit tests, not policy modules."""


@dataclass(frozen=True)
class PolicyBundle:
    """The Rego modules of one policy directory, with their unit tests kept apart.

    Attributes:
        source: Where the bundle was read from (for messages).
        modules: ``(file name, text)`` of every policy module, sorted by name.
        tests: ``(file name, text)`` of every ``*_test.rego`` file, sorted by name.
    """

    source: str
    modules: tuple[tuple[str, str], ...]
    tests: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str:
        """Content hash of the policy modules (tests excluded): the pinned policy version."""
        digest = hashlib.sha256()
        for name, text in self.modules:
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        return "rego-" + digest.hexdigest()[:16]

    @classmethod
    def load(cls, path: BundlePath) -> PolicyBundle:
        """Read a bundle from a folder (a domain's ``policy_dir``, or an operator's).

        Args:
            path: A directory (``str`` or path-like) or a resource folder
                (``importlib.resources.files(...)``).

        Raises:
            PolicyError: the folder does not exist or holds no policy module.
        """
        root: Traversable
        if isinstance(path, str | os.PathLike):
            root, source = Path(path), os.fspath(path)
        else:
            root, source = path, str(path)
        if not root.is_dir():
            raise PolicyError(f"policy directory {source} does not exist", source=source)
        modules: list[tuple[str, str]] = []
        tests: list[tuple[str, str]] = []
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".rego") or not entry.is_file():
                continue
            text = entry.read_text(encoding="utf-8")
            (tests if entry.name.endswith(TEST_SUFFIX) else modules).append((entry.name, text))
        if not modules:
            raise PolicyError(
                f"policy directory {source} holds no .rego policy module", source=source
            )
        return cls(source=source, modules=tuple(modules), tests=tuple(tests))
