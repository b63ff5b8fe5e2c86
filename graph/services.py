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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from checkpoints import factory
from checkpoints.factory import Stores
from graph.errors import ConfigError
from graph.planners.base import Planner
from graph.planners.explicit import ExplicitPlanner
from graph.planners.llm import LLMPlanner, PriceTable, load_prices, render_system
from graph.planners.llm.prompts import render_examples
from graph.planners.router import RiskTaxonomy, Router, load_taxonomy
from graph.planners.templates import TemplatePlanner
from graph.planners.templates.schema import IdentifyStepTemplate
from graph.settings import Settings
from graph.state import STATE_TYPES, Route
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
        chat_model: The chat model of the LLM planner (tests, embedding); built from the
            settings (``ChatOpenAI``) when omitted and a model is configured.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        stores: Stores | None = None,
        domain: DomainPlugin | None = None,
        readonly: bool = False,
        chat_model: BaseChatModel | None = None,
    ) -> None:
        self._readonly = readonly
        self._settings = settings
        self._stores = stores
        self._domain = domain
        self._chat_model = chat_model
        self._lock = threading.Lock()
        self._seeded = False

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
        """The policy: the domain's Rego package, from ``PLANBOUND_POLICY_DIR`` or the domain.

        Evaluated on ``OPA_URL`` when set, else in-process by ``PLANBOUND_POLICY_ENGINE``.
        """
        s = self.settings
        return load_policy(
            s.policy_dir or self.domain.policy_dir,
            package=self.domain.policy_package,
            opa_url=s.opa_url,
            engine=s.policy_engine,
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
            evidence=self._evidence if self.domain.evidence is not None else None,
        )

    def _evidence(self, values: Mapping[str, Any]) -> frozenset[str] | None:
        """The domain's evidence for one reading of a request, read in a snapshot.

        Unreadable data is no evidence (``None``): the words decide, or the planner asks.
        """
        read = self.domain.evidence
        if read is None:
            return None
        stores = self.stores
        conn = stores.domain
        try:
            with stores.lock, conn.snapshot():
                return read(self.domain.open_store(conn), values)
        except conn.errors:
            return None

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

    def planner_for(self, explicit_plan: Any = None, route: Route | None = None) -> Planner:
        """Return the planner for a run: explicit, the LLM planner or the templates.

        Explicit when a plan document is given, the LLM planner when the run's route chose
        it, else the templates.
        """
        if explicit_plan is not None:
            return ExplicitPlanner(explicit_plan)
        if route is not None and route.planner == "llm":
            planner = self.llm
            if planner is None:
                raise ConfigError("the run was routed to the LLM planner but no model is set")
            return planner
        return self.templates

    @functools.cached_property
    def taxonomy(self) -> RiskTaxonomy | None:
        """The domain's risk tiers (``None`` when it ships none: no LLM planning)."""
        source = self.domain.risk_tiers
        return load_taxonomy(source) if source is not None else None

    @functools.cached_property
    def prices(self) -> PriceTable:
        """The price table (``PLANBOUND_PRICE_TABLE`` or the shipped one)."""
        return load_prices(self.settings.price_table)

    @functools.cached_property
    def llm(self) -> LLMPlanner | None:
        """The LLM planner, when a model is configured (or given); else ``None``."""
        s = self.settings
        model = self._chat_model
        if model is None:
            if not s.llm_configured or s.model is None:
                return None
            from langchain_openai import ChatOpenAI

            key = s.openai_api_key or SecretStr("unused")  # local servers take any key
            model = ChatOpenAI(
                model=s.model,
                base_url=s.openai_base_url,
                api_key=key,
                temperature=0,
                timeout=s.llm_timeout_s,
                max_retries=0,  # the graph owns retries
            )
        taxonomy = self.taxonomy
        return LLMPlanner(
            model,
            model_name=s.model or "unnamed",
            system=render_system(
                domain=self.domain.name,
                catalog=self.catalog,
                rules=taxonomy.rules if taxonomy is not None else {},
                examples=self._examples(),
            ),
            prices=self.prices,
            method=s.structured_output,
        )

    def _examples(self) -> str:
        """Few-shot examples for the LLM planner, from the domain's templates."""
        if self.settings.templates is None and self.domain.templates is None:
            return ""
        document = self.templates.document
        intents = []
        for intent in document.intents:
            steps = []
            for t in intent.steps:
                if isinstance(t, IdentifyStepTemplate):
                    form = next(iter(document.identity.forms.values()))
                    steps.append((t.id, form.tool, dict(form.args), list(t.depends_on)))
                else:
                    steps.append((t.id, t.tool, dict(t.args), list(t.depends_on)))
            intents.append((intent.description, steps))
        return render_examples(intents)

    @functools.cached_property
    def router(self) -> Router:
        """The planner router, configured by the operator (``PLANBOUND_PLANNER``)."""
        has_templates = self.settings.templates is not None or self.domain.templates is not None
        return Router(
            self.settings.planner,
            self.templates if has_templates else None,
            self.taxonomy,
            llm_available=self._chat_model is not None or self.settings.llm_configured,
        )

    def store(self, conn: Any) -> Any:
        """Return the domain's store over ``conn`` (what tools get as ``db``)."""
        return self.domain.open_store(conn)

    def is_seeded(self, *, fresh: bool = False) -> bool:
        """Whether the domain database holds data.

        Once it has been seen to hold data the answer is kept (records are only replaced,
        by :meth:`seed`, which asks again), so a run does not ask the database each time;
        ``fresh`` asks it anyway (a readiness check: the database must answer).
        """
        if self._seeded and not fresh:
            return True
        stores = self.stores
        with stores.lock:
            self._seeded = bool(self.store(stores.domain).is_seeded())
        return self._seeded

    def seed(self, data: Any) -> dict[str, int]:
        """Replace the domain's records with ``data``, in one transaction.

        Raises:
            ValueError: the data is not in the domain's format (the message says why).
        """
        if self.domain.seed is None:
            raise ConfigError(f"the {self.domain.name} domain cannot be seeded")
        stores = self.stores
        self._seeded = False
        with stores.lock, stores.domain.transaction(write=True):
            return self.domain.seed(stores.domain, data)
