"""Template planner: versioned YAML plan templates filled by a domain's strict slot extractors.

A template document (the retail domain ships ``tools/retail/templates.yaml``) declares
intents. Each intent has trigger phrases, slots (each filled by one extractor the domain
provides) and steps whose arguments hold ``{slot}`` / ``{slot.field}`` placeholders and
``$step.path`` references. The document's own ``description`` and
``matching.description`` state the accepted formats and the matching rule; in short:

* the request is matched to exactly one intent; no match, or several matches that no
  single intent explains better, is a :class:`~guards.plan.CannotPlan`;
* every slot is filled by a strict extractor; a required slot that is missing, malformed
  or ambiguous (two different values) is a :class:`~guards.plan.CannotPlan` whose reason
  names what is needed and what was found.

Modules: :mod:`~graph.planners.templates.schema` (the document's models),
:mod:`~graph.planners.templates.placeholders` (filling and checking placeholders),
:mod:`~graph.planners.templates.validate` (document checks against the extractors),
:mod:`~graph.planners.templates.match` (intent matching) and
:mod:`~graph.planners.templates.planner` (:class:`TemplatePlanner`).
"""

from graph.planners.templates.planner import TemplatePlanner
from graph.planners.templates.schema import Intent, TemplateDocument

__all__ = ["Intent", "TemplateDocument", "TemplatePlanner"]
