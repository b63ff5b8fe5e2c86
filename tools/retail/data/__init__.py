"""The τ²-bench retail data shipped with planbound (MIT, see LICENSE and NOTICE.md)."""
