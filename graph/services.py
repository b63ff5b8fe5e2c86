"""The long-lived objects a run needs (domain, catalog, policy, planners, stores), built once.

:class:`Services` is what the graph is given: ``build_graph(services)`` binds its nodes to
one instance. Everything is built on first use from :class:`~graph.settings.Settings`, never
at import time, and tests make their own instance instead of clearing caches.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from pathlib import Path
from typing import Any

from checkpoints import factory
from checkpoints.factory import Stores
from graph.errors import ConfigError
from graph.planners.base import Planner
from graph.planners.explicit import ExplicitPlanner
from graph.planners.templates import TemplatePlanner
from graph.settings import Settings
from graph.state import STATE_TYPES
from guards.contracts import Budget
from guards.policy import Policy, PolicyConfig, load_policy
from guards.verifier import Verifier
from tools.catalog import Catalog
from tools.domain import DomainPlugin


def load_domain(path: str) -> DomainPlugin:
    """Import a domain plug-in: a module path whose ``DOMAIN`` is a :class:`DomainPlugin`.

    Raises:
        ConfigError: the module cannot be imported or holds no plug-in.
    """
    try:
        module = importlib.import_module(path)
    except ImportError as exc:
        raise ConfigError(f"PLANBOUND_DOMAIN={path}: cannot import it ({exc})") from None
    plugin = getattr(module, "DOMAIN", None)
    if not isinstance(plugin, DomainPlugin):
        raise ConfigError(f"PLANBOUND_DOMAIN={path}: the module has no DOMAIN plug-in")
    return plugin


def open_stores(
    home: str | os.PathLike[str] | None = None,
    uri: str | None = None,
    *,
    domain: DomainPlugin | None = None,
    pool_max: int = 10,
    readonly: bool = False,
) -> Stores:
    """Open the stores for ``domain``: its tables migrated, the state types allowed.

    Without ``domain``, the settings' default domain (retail). With ``readonly`` nothing is
    created or migrated and no write lock is taken (commands that only read).
    """
    plugin = domain or load_domain(str(Settings.model_fields["domain"].default))
    return factory.open_stores(
        home,
        uri,
        components=[(plugin.name, plugin.migrations)],
        serde_types=STATE_TYPES,
        pool_max=pool_max,
        readonly=readonly,
    )


class Services:
    """The objects runs share in one process, built lazily from settings.

    Args:
        settings: Operator settings; read from the environment on first use when omitted.
        stores: Open stores to use (tests, embedding); opened from settings when omitted.
        domain: The domain plug-in; loaded from ``settings.domain`` when omitted.
        readonly: Open the stores read-only (a command that only reads).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        stores: Stores | None = None,
        domain: DomainPlugin | None = None,
        readonly: bool = False,
    ) -> None:
        self._readonly = readonly
        self._settings = settings
        self._stores = stores
        self._domain = domain
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        """The operator settings."""
        if self._settings is None:
            self._settings = Settings.load()
        return self._settings

    @functools.cached_property
    def domain(self) -> DomainPlugin:
        """The domain plug-in."""
        return self._domain or load_domain(self.settings.domain)

    @functools.cached_property
    def catalog(self) -> Catalog:
        """The domain's catalog (built once)."""
        return self.domain.build_catalog()

    @functools.cached_property
    def policy(self) -> Policy:
        """The policy: the domain's Rego package, from ``PLANBOUND_POLICY_DIR`` or the domain."""
        s = self.settings
        return load_policy(
            s.policy_dir or self.domain.policy_dir,
            package=self.domain.policy_package,
            opa_url=s.opa_url,
            config=PolicyConfig(
                amount_threshold=s.approval_threshold, max_write_steps=s.max_write_steps
            ),
        )

    @functools.cached_property
    def templates(self) -> TemplatePlanner:
        """The template planner (``PLANBOUND_TEMPLATES`` or the domain's templates)."""
        source: Any = self.settings.templates or self.domain.templates
        if source is None:
            raise ConfigError(f"the {self.domain.name} domain ships no templates")
        return TemplatePlanner.load(
            Path(source) if isinstance(source, str) else source,
            extractors=self.domain.extractors,
            mask=self.domain.mask,
            write_tools=frozenset(
                n for n in self.catalog.names() if self.catalog.entries[n].spec.effect == "write"
            ),
        )

    @property
    def budget(self) -> Budget:
        """The plan budget from the settings."""
        return Budget(max_steps=self.settings.max_steps)

    @functools.cached_property
    def verifier(self) -> Verifier:
        """The one verifier."""
        return Verifier(self.catalog, self.policy, self.domain, self.budget)

    @property
    def stores(self) -> Stores:
        """The stores (opened on first use)."""
        with self._lock:
            if self._stores is None:
                s = self.settings
                self._stores = open_stores(
                    s.home,
                    s.postgres_uri,
                    domain=self.domain,
                    pool_max=s.pg_pool_max,
                    readonly=self._readonly,
                )
            return self._stores

    def planner_for(self, explicit_plan: Any = None) -> Planner:
        """Return the planner for a run: explicit when a plan document is given, else templates."""
        if explicit_plan is not None:
            return ExplicitPlanner(explicit_plan)
        return self.templates

    def store(self, conn: Any) -> Any:
        """Return the domain's store over ``conn`` (what tools get as ``db``)."""
        return self.domain.open_store(conn)

    def is_seeded(self) -> bool:
        """Whether the domain database holds data."""
        stores = self.stores
        with stores.lock:
            return bool(self.store(stores.domain).is_seeded())

    def seed(self, data: Any) -> dict[str, int]:
        """Replace the domain's records with ``data``, in one transaction.

        Raises:
            ValueError: the data is not in the domain's format (the message says why).
        """
        if self.domain.seed is None:
            raise ConfigError(f"the {self.domain.name} domain cannot be seeded")
        stores = self.stores
        with stores.lock, stores.domain.transaction(write=True):
            return self.domain.seed(stores.domain, data)
