"""Guards: side-effect-free checks that run before anything changes.

Guards read plans (the Plan IR in :mod:`guards.plan`) and the tool catalog's specs;
they never run tools and never rewrite a plan: they report what is wrong, naming the step
and the field.
"""
