"""Offline evaluations of plan quality and safety."""
