"""Versioned plan templates (YAML) for the template planner."""
