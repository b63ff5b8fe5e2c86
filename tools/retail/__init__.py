"""The retail demo domain, compatible with τ²-bench retail (sierra-research/tau2-bench, MIT)."""

from tools.retail.catalog import build_catalog
from tools.retail.db import (
    Change,
    DomainNotSeeded,
    RetailDB,
    export,
    load_shipped,
    seed,
    tau2_hash,
)

__all__ = [
    "Change",
    "DomainNotSeeded",
    "RetailDB",
    "build_catalog",
    "export",
    "load_shipped",
    "seed",
    "tau2_hash",
]
