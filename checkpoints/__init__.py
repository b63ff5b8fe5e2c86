"""Storage: the one factory for checkpointers and domain connections, and the ledger.

Storage knows nothing of nodes or judgement: it builds savers, opens the domain database,
and records what each side effect did.
"""
