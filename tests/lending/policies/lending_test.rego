package planbound.lending_test

import rego.v1

import data.planbound.lending

plan := {"steps": [
	{"id": "m", "tool": "find_member_by_email", "ancestors": []},
	{"id": "l", "tool": "lend_book", "ancestors": ["m"]},
]}

catalog := {"lend_book": {"effect": "write"}, "find_member_by_email": {"effect": "read"}}

facts(lent_to) := {
	"steps": {"l": {"args": {"book_id": "B1"}}},
	"books": {"B1": {"book_id": "B1", "lent_to": lent_to}},
}

# rego-cpp (regopy) needs computed values after `as`, one `with` per input path (a `with`
# on the whole `input` aborts it), hence object.union(x, {}).
denied(lent_to) := {v.rule |
	some v in lending.deny with input.plan as object.union(plan, {})
		with input.catalog as object.union(catalog, {})
		with input.facts as facts(lent_to)
}

test_a_lent_book_is_denied if "book.available" in denied("m2")

test_a_free_book_is_not_denied if count(denied(null)) == 0
