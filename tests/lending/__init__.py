"""A second, tiny domain: members borrow books. It exists to prove that a domain is one folder.

Three tools (find a member, read a book, lend it), one table, its own Rego package
(``planbound.lending``) and one plan template, plugged in through
:class:`~tools.domain.DomainPlugin` like the retail domain.
"""

from importlib import resources

from lending.extractors import EXTRACTORS
from lending.store import MIGRATIONS, LendingDB, LendingFacts, build_catalog, export, seed
from tools.domain import DomainPlugin

DOMAIN = DomainPlugin(
    name="lending",
    build_catalog=build_catalog,
    open_store=LendingDB,
    migrations=MIGRATIONS,
    facts=LendingFacts(),
    policy_package="planbound.lending",
    policy_dir=resources.files(__name__).joinpath("policies"),
    templates=resources.files(__name__).joinpath("templates.yaml"),
    extractors=EXTRACTORS,
    seed=seed,
    export=export,
)
