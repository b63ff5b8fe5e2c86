"""Policy as code: Rego policies evaluated in-process (regopy, or regorus) or by OPA.

A policy bundle is the set of ``.rego`` files in a domain's folder; its content hash is the
policy version, pinned by every run and recorded with every verdict. The verifier asks the
domain package's ``decision`` rule about a plan and its facts, and its ``approval_denied``
rule whether a reviewer may approve a step. Evaluation fails closed.

Modules: ``bundle`` (reading a folder), ``engines`` (regopy and OPA), ``regorus`` (the
opt-in engine), ``decision`` (the
answer and its verdict), ``policy`` (input, decisions, settings, loading), ``testing``
(the Rego unit-test runner).
"""

from guards.errors import PolicyError
from guards.policy.bundle import PolicyBundle
from guards.policy.decision import PolicyDecision, Requirement, Violation, to_verdict
from guards.policy.engines import (
    ENTRYPOINTS,
    Engine,
    EngineName,
    OpaEngine,
    RegoEngine,
)
from guards.policy.policy import Policy, PolicyConfig, load_policy
from guards.policy.regorus import RegorusEngine
from guards.policy.testing import RegoTest, run_tests

__all__ = [
    "ENTRYPOINTS",
    "Engine",
    "EngineName",
    "OpaEngine",
    "Policy",
    "PolicyBundle",
    "PolicyConfig",
    "PolicyDecision",
    "PolicyError",
    "RegoEngine",
    "RegorusEngine",
    "RegoTest",
    "Requirement",
    "Violation",
    "load_policy",
    "run_tests",
    "to_verdict",
]
