# The lending domain's policy: a member borrows one book at a time, and a librarian approves.
package planbound.lending

import rego.v1

steps := input.plan.steps

step_by_id[s.id] := s if some s in steps

args(s) := input.facts.steps[s.id].args

violation(s, rule, reason) := {"step": s.id, "rule": rule, "reason": reason}

has_member_before(s) if {
	some a in s.ancestors
	step_by_id[a].tool == "find_member_by_email"
}

deny contains violation(s, "identity.required", "no find_member_by_email step before it") if {
	some s in steps
	s.tool == "lend_book"
	not has_member_before(s)
}

deny contains violation(s, "book.available", msg) if {
	some s in steps
	s.tool == "lend_book"
	book := input.facts.books[args(s).book_id]
	is_string(book.lent_to)
	msg := concat("", ["book ", book.book_id, " is already lent to ", book.lent_to])
}

needs_approval contains {"step": s.id, "rule": "loans.need_approval", "reason": "a loan changes the catalogue", "roles": ["admin", "librarian"]} if {
	some s in steps
	input.catalog[s.tool].effect == "write"
}

decision := {"deny": deny, "needs_approval": needs_approval}

approval_denied contains msg if {
	some requirement in input.approval.requirements
	held := {r | some r in input.approval.reviewer.roles; r in requirement.roles}
	count(held) == 0
	msg := concat("", [input.approval.reviewer.id, " may not approve step ", input.approval.step, ": it needs a librarian"])
}
