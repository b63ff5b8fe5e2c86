"""Serving planbound on the LangGraph server: auth, extra HTTP routes, metrics."""
