"""Template planner: versioned YAML plan templates filled by a domain's strict slot extractors.

A template document (the retail domain ships ``tools/retail/templates.yaml``) declares
intents. Each intent has trigger phrases, slots (each filled by one extractor the domain
provides) and steps whose arguments hold ``{slot}`` / ``{slot.field}`` placeholders and
``$step.path`` references. The document's own ``description`` and
``matching.description`` state the accepted formats and the matching rule; in short:

* the message is cut into clauses; each clause asks for one intent or for none; every
  intent asked for is planned, in the order written, as one composite plan (shared
  lookups once), or the whole request is a :class:`~guards.plan.CannotPlan`;
* a clause is matched to exactly one intent; several readings of the same words (an
  exchange of a delivered order or a change of a pending one) are decided by the readings
  the clause can fill, then by the domain's evidence (the state of the records they name,
  ``applies_to``; a clause that ``claims`` another state is asked about), then by the
  strongest cues; a tie names both and what decides;
* every slot is filled by a strict extractor; a required slot that is missing, malformed
  or ambiguous (two different values) is a :class:`~guards.plan.CannotPlan` whose reason
  names what is needed and what was found;
* a clause with a condition one plan cannot decide is a :class:`~guards.plan.CannotPlan`
  naming it; a fallback for a first choice that does not exist is left out (the first
  choice's selection fails before any write when nothing matches);
* steps may carry pure JMESPath selections over earlier lookups (``guards.select``): the
  engine picks items and variants from the data; the planner never sees a tool output.

Modules: :mod:`~graph.planners.templates.schema` (the document's models),
:mod:`~graph.planners.templates.placeholders` (filling and checking placeholders),
:mod:`~graph.planners.templates.validate` (document checks against the extractors),
:mod:`~graph.planners.templates.match` (intent matching),
:mod:`~graph.planners.templates.clauses` (clauses and conditions),
:mod:`~graph.planners.templates.compose` (writing intents as steps, composite plans) and
:mod:`~graph.planners.templates.planner` (:class:`TemplatePlanner`).
"""

from graph.planners.templates.planner import TemplatePlanner
from graph.planners.templates.schema import Intent, TemplateDocument

__all__ = ["Intent", "TemplateDocument", "TemplatePlanner"]
