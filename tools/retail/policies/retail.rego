# planbound's retail policy: τ²-bench retail's written policy plus operator rules.
#
# Input (built by guards/policy/policy.py; a field that would be null or empty is left out):
#   plan.source       who wrote the plan: "template", "explicit", "llm" or "edit"
#   plan.steps[]      id, tool, ancestors (ids the step transitively depends on)
#   catalog[tool]     effect ("read"/"write"), risk, compensator (the tools the plan names)
#   facts.steps[id]   args (resolved), unresolved[], output (identity lookups), error
#   facts.orders[id]  user_id, status, total, payment_method_id (first payment), items[]
#   facts.users[id]   payment_methods[id].source/.balance
#   facts.items[id]   product_id, available, price
#   actor             id, roles
#   config            amount_threshold, max_write_steps
#   approval          (approval checks only) step, risk, reviewer{id, roles}, requirements[]
#
# Messages are built with concat, not sprintf("%s") of computed strings, which rego-cpp
# renders with quotes.
#
# Output: decision.deny[] and decision.needs_approval[], each naming step, rule and reason;
# approval_denied[] for a reviewer who may not approve a step.
package planbound.retail

import rego.v1

identity_tools := {"find_user_id_by_email", "find_user_id_by_name_zip"}

order_tools := {
	"get_order_details",
	"cancel_pending_order",
	"modify_pending_order_address",
	"modify_pending_order_items",
	"modify_pending_order_payment",
	"return_delivered_order_items",
	"exchange_delivered_order_items",
}

pending_only := {
	"cancel_pending_order",
	"modify_pending_order_address",
	"modify_pending_order_items",
	"modify_pending_order_payment",
}

delivered_only := {"return_delivered_order_items", "exchange_delivered_order_items"}

item_swaps := {"modify_pending_order_items", "exchange_delivered_order_items"}

cancel_reasons := {"no longer needed", "ordered by mistake"}

approver_roles := ["admin", "reviewer", "supervisor"]

supervisor_roles := ["admin", "supervisor"]

steps := input.plan.steps

step_by_id[s.id] := s if some s in steps

is_write(s) if input.catalog[s.tool].effect == "write"

# A rule about some tools visits only their steps (`steps_of`). A group none of whose tools
# the plan names costs one set intersection, however long the plan; a group the plan uses
# costs one pass over its steps, and the groups several rules share are rules of their own,
# evaluated once per decision (a function is evaluated again at each call).
writes := [s | some s in steps; is_write(s)]

plan_tools := {s.tool | some s in steps}

steps_of(tools) := [s | some s in steps; s.tool in tools] if count(tools & plan_tools) > 0

steps_of(tools) := [] if count(tools & plan_tools) == 0

identity_steps := steps_of(identity_tools)

swap_or_return_steps := steps_of(item_swaps | {"return_delivered_order_items"})

swap_steps := steps_of(item_swaps)

order_steps := steps_of(order_tools)

payment_steps := steps_of({"modify_pending_order_payment"})

identity_ids := {s.id | some s in identity_steps}

write_count := count(writes)

user_steps := array.concat(steps_of({"get_user_details", "get_order_details"}), writes)

args(s) := input.facts.steps[s.id].args

violation(s, rule, reason) := {"step": s.id, "rule": rule, "reason": reason}

# Identity ------------------------------------------------------------------------------

authenticated contains user if {
	some s in identity_steps
	user := input.facts.steps[s.id].output
	is_string(user)
}

the_user := user if {
	count(authenticated) == 1
	some user in authenticated
}

has_identity_before(s) if {
	some a in s.ancestors
	a in identity_ids
}

deny contains violation(s, "identity.required", msg) if {
	some s in user_steps
	not has_identity_before(s)
	msg := sprintf("%s touches a user's data, but no find_user_id_* step before it establishes who the user is", [s.tool])
}

deny contains violation(s, "identity.resolved", msg) if {
	some s in identity_steps
	error := input.facts.steps[s.id].error
	is_string(error)
	msg := sprintf("the user could not be identified: %s", [error])
}

deny contains violation(s, "identity.one_user", msg) if {
	count(authenticated) > 1
	some s in identity_steps
	msg := concat("", ["a run serves one user, but the lookups identify ", concat(", ", sort(authenticated))])
}

# One user per run: every record touched belongs to the authenticated user -------------

deny contains violation(s, "scope.user", msg) if {
	some s in steps
	user := args(s).user_id
	user != the_user
	msg := sprintf("user %s is not the authenticated user %s", [user, the_user])
}

deny contains violation(s, "scope.order_owner", msg) if {
	some s in order_steps
	order := input.facts.orders[args(s).order_id]
	order.user_id != the_user
	msg := sprintf("order %s belongs to %s, not to the authenticated user %s", [args(s).order_id, order.user_id, the_user])
}

deny contains violation(s, "scope.order_exists", msg) if {
	some s in order_steps
	is_write(s)
	order_id := args(s).order_id
	not input.facts.orders[order_id]
	msg := sprintf("order %s does not exist", [order_id])
}

deny contains violation(s, "scope.payment_method", msg) if {
	some s in steps
	method := args(s).payment_method_id
	not input.facts.users[the_user].payment_methods[method]
	msg := sprintf("payment method %s is not one of %s's", [method, the_user])
}

deny contains violation(s, "facts.resolved", msg) if {
	some s in writes
	some problem in input.facts.steps[s.id].unresolved
	msg := sprintf("its arguments cannot be checked before it runs: %s", [problem])
}

# Order status --------------------------------------------------------------------------

order_of(s) := input.facts.orders[args(s).order_id]

deny contains violation(s, "order.pending", msg) if {
	some s in steps_of(pending_only)
	status := order_of(s).status
	status != "pending"
	msg := sprintf("order %s is '%s'; only pending orders can be cancelled or modified", [args(s).order_id, status])
}

deny contains violation(s, "order.delivered", msg) if {
	some s in steps_of(delivered_only)
	status := order_of(s).status
	status != "delivered"
	msg := sprintf("order %s is '%s'; only delivered orders can be returned or exchanged", [args(s).order_id, status])
}

deny contains violation(s, "cancel.reason", msg) if {
	some s in steps_of({"cancel_pending_order"})
	not args(s).reason in cancel_reasons
	msg := sprintf("the reason must be 'no longer needed' or 'ordered by mistake', not '%s'", [args(s).reason])
}

deny contains violation(s, "modify.items_once", msg) if {
	some s in steps_of({"modify_pending_order_items"})
	same := [t | some t in steps_of({s.tool}); args(t).order_id == args(s).order_id]
	count(same) > 1
	msg := sprintf("the items of order %s can be modified only once, in one step", [args(s).order_id])
}

# Items ---------------------------------------------------------------------------------

order_item_ids(s) := [i.item_id | some i in order_of(s).items]

deny contains violation(s, "items.in_order", msg) if {
	some s in swap_or_return_steps
	some id in args(s).item_ids
	count([x | some x in args(s).item_ids; x == id]) > count([x | some x in order_item_ids(s); x == id])
	msg := sprintf("item %s is not in order %s (or not that many times)", [id, args(s).order_id])
}

deny contains violation(s, "items.given", msg) if {
	some s in swap_or_return_steps
	count(args(s).item_ids) == 0
	msg := "no items are named"
}

deny contains violation(s, "items.paired", msg) if {
	some s in swap_steps
	count(args(s).item_ids) != count(args(s).new_item_ids)
	msg := sprintf("%d items to replace but %d replacements", [count(args(s).item_ids), count(args(s).new_item_ids)])
}

swap_pairs(s) := [pair |
	some i
	old := args(s).item_ids[i]
	new := args(s).new_item_ids[i]
	pair := [old, new]
]

old_product(s, old) := product if {
	some item in order_of(s).items
	item.item_id == old
	product := item.product_id
}

deny contains violation(s, "items.same_product", msg) if {
	some s in swap_steps
	some pair in swap_pairs(s)
	new := input.facts.items[pair[1]]
	new.product_id != old_product(s, pair[0])
	msg := sprintf("item %s is not a variant of the same product as %s", [pair[1], pair[0]])
}

deny contains violation(s, "items.exists", msg) if {
	some s in swap_steps
	some pair in swap_pairs(s)
	not input.facts.items[pair[1]]
	msg := sprintf("item %s does not exist", [pair[1]])
}

deny contains violation(s, "items.available", msg) if {
	some s in swap_steps
	some pair in swap_pairs(s)
	input.facts.items[pair[1]].available == false
	msg := sprintf("item %s is not available", [pair[1]])
}

deny contains violation(s, "items.changed", msg) if {
	some s in swap_steps
	some pair in swap_pairs(s)
	pair[0] == pair[1]
	msg := sprintf("item %s would be replaced by itself", [pair[0]])
}

# Payment -------------------------------------------------------------------------------

method_of(s) := input.facts.users[the_user].payment_methods[args(s).payment_method_id]

deny contains violation(s, "payment.gift_card_balance", msg) if {
	some s in payment_steps
	method := method_of(s)
	method.source == "gift_card"
	method.balance < order_of(s).total
	msg := sprintf("gift card %s has %v, less than the order's %v", [args(s).payment_method_id, method.balance, order_of(s).total])
}

deny contains violation(s, "payment.changed", msg) if {
	some s in payment_steps
	args(s).payment_method_id == order_of(s).payment_method_id
	msg := sprintf("order %s is already paid with %s", [args(s).order_id, args(s).payment_method_id])
}

deny contains violation(s, "return.refund_method", msg) if {
	some s in steps_of({"return_delivered_order_items"})
	method := method_of(s)
	method.source != "gift_card"
	args(s).payment_method_id != order_of(s).payment_method_id
	msg := sprintf("a refund goes to the original payment method %s or a gift card, not %s", [order_of(s).payment_method_id, args(s).payment_method_id])
}

# Scope of the agent --------------------------------------------------------------------

# A transfer hands a human the part of a request the tools cannot serve: it may follow the
# writes that served the rest (it depends on each of them), but no write may run beside or
# after it.
deny contains violation(s, "transfer.out_of_scope", msg) if {
	some s in steps_of({"transfer_to_human_agents"})
	some w in writes
	not w.id in s.ancestors
	msg := sprintf("a transfer to a human comes after every change the tools make; %s does not run before it", [w.id])
}

# Operator rules ------------------------------------------------------------------------

deny contains violation(s, "operator.max_write_steps", msg) if {
	count(writes) > input.config.max_write_steps
	s := writes[input.config.max_write_steps]
	msg := sprintf("the plan has %d write steps; at most %d are allowed", [count(writes), input.config.max_write_steps])
}

needs_approval contains {"step": s.id, "rule": "writes.need_approval", "reason": msg, "roles": approver_roles} if {
	some s in writes
	msg := sprintf("%s changes the domain (risk %s)", [s.tool, input.catalog[s.tool].risk])
}

needs_approval contains {"step": s.id, "rule": "operator.amount_threshold", "reason": msg, "roles": supervisor_roles} if {
	some s in writes
	total := order_of(s).total
	total > input.config.amount_threshold
	msg := sprintf("order %s is worth %v, over the %v threshold: a supervisor must approve", [args(s).order_id, total, input.config.amount_threshold])
}

# Plans written by the LLM planner ------------------------------------------------------
# A model plans from the request alone, so its plans are reviewed whatever the operator
# relaxes for engine-controlled plans: every write needs a reviewer, and a plan whose writes
# touch orders worth more than the threshold in total (split or not) needs a supervisor.

llm_planned if input.plan.source == "llm"

llm_write_total := sum([order.total |
	some order_id in {args(w).order_id | some w in steps; is_write(w)}
	order := input.facts.orders[order_id]
])

needs_approval contains {"step": s.id, "rule": "llm.write_review", "reason": msg, "roles": approver_roles} if {
	llm_planned
	some s in steps
	is_write(s)
	msg := sprintf("%s was planned by the LLM planner: a person reviews every write it plans", [s.tool])
}

needs_approval contains {"step": s.id, "rule": "llm.amount_threshold", "reason": msg, "roles": supervisor_roles} if {
	llm_planned
	llm_write_total > input.config.amount_threshold
	some s in steps
	is_write(s)
	msg := sprintf("the LLM-planned writes touch orders worth %v in total, over the %v threshold: a supervisor must approve", [llm_write_total, input.config.amount_threshold])
}

decision := {"deny": deny, "needs_approval": needs_approval}

# Approvals -----------------------------------------------------------------------------

approval_denied contains msg if {
	some requirement in input.approval.requirements
	held := {r | some r in input.approval.reviewer.roles; r in requirement.roles}
	count(held) == 0
	who := sprintf("%s may not approve step %s: rule %s needs one of the roles ", [input.approval.reviewer.id, input.approval.step, requirement.rule])
	msg := concat("", [who, concat(", ", requirement.roles)])
}

approval_denied contains msg if {
	input.approval.reviewer.id == input.actor.id
	input.approval.risk == "high"
	msg := sprintf("operator.no_self_approval: %s asked for this run and may not approve its high-risk step %s", [input.actor.id, input.approval.step])
}
