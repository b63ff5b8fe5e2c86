"""The tool catalog and the demo domain's tools.

Tools know nothing of the graph and never judge themselves: they do the work, raise
:class:`~tools.catalog.ToolError` for a business refusal, and describe themselves through a
:class:`~tools.catalog.ToolSpec` that the guards and the execution engine read.
"""
