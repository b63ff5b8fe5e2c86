"""The retail demo domain, compatible with τ²-bench retail (sierra-research/tau2-bench, MIT).

:data:`DOMAIN` is the plug-in planbound loads: tools and catalog, tables, facts provider,
Rego package (``policies/``) and plan templates (``templates.yaml``).
"""

from importlib import resources

from tools.domain import DomainPlugin
from tools.retail.bulk import BULK_EXTRACTORS
from tools.retail.catalog import build_catalog
from tools.retail.db import (
    MIGRATIONS,
    DomainNotSeeded,
    RetailDB,
    export,
    load_shipped,
    seed,
    tau2_hash,
)
from tools.retail.extractors import EXTRACTORS, mask
from tools.retail.facts import RetailFacts, order_states

DOMAIN = DomainPlugin(
    name="retail",
    build_catalog=build_catalog,
    open_store=RetailDB,
    migrations=MIGRATIONS,
    facts=RetailFacts(),
    policy_package="planbound.retail",
    policy_dir=resources.files(__name__).joinpath("policies"),
    templates=resources.files(__name__).joinpath("templates.yaml"),
    extractors={**EXTRACTORS, **BULK_EXTRACTORS},
    mask=mask,
    seed=seed,
    export=export,
    shipped_data=load_shipped,
    data_hash=tau2_hash,
    data_hash_name="tau2_hash",
    risk_tiers=resources.files(__name__).joinpath("risk_tiers.yaml"),
    evidence=order_states,
)
"""The retail domain plug-in."""

__all__ = [
    "DOMAIN",
    "MIGRATIONS",
    "DomainNotSeeded",
    "RetailDB",
    "build_catalog",
    "export",
    "load_shipped",
    "seed",
    "tau2_hash",
]
