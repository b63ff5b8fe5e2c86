# Unit tests of the retail policy; run with `planbound policy test`.
package planbound.retail_test

import rego.v1

import data.planbound.retail

catalog_fixture := {
	"find_user_id_by_email": {"effect": "read", "risk": "low"},
	"get_order_details": {"effect": "read", "risk": "low"},
	"transfer_to_human_agents": {"effect": "read", "risk": "low"},
	"cancel_pending_order": {"effect": "write", "risk": "high"},
	"modify_pending_order_address": {"effect": "write", "risk": "medium"},
	"modify_pending_order_items": {"effect": "write", "risk": "high"},
	"modify_pending_order_payment": {"effect": "write", "risk": "medium"},
	"return_delivered_order_items": {"effect": "write", "risk": "high"},
	"exchange_delivered_order_items": {"effect": "write", "risk": "high"},
}

config_fixture := {"amount_threshold": 1000, "max_write_steps": 2}

users := {
	"u1": {"payment_methods": {
		"paypal_1": {"source": "paypal", "balance": null},
		"gift_card_1": {"source": "gift_card", "balance": 10},
	}},
	"u2": {"payment_methods": {"paypal_2": {"source": "paypal", "balance": null}}},
}

orders := {
	"#W1": {"user_id": "u1", "status": "pending", "total": 100, "payment_method_id": "paypal_1", "items": [{"item_id": "i1", "product_id": "p1"}]},
	"#W2": {"user_id": "u2", "status": "pending", "total": 50, "payment_method_id": "paypal_2", "items": [{"item_id": "i1", "product_id": "p1"}]},
	"#W3": {"user_id": "u1", "status": "delivered", "total": 2000, "payment_method_id": "paypal_1", "items": [{"item_id": "i1", "product_id": "p1"}]},
	"#W4": {"user_id": "u1", "status": "pending (item modified)", "total": 100, "payment_method_id": "paypal_1", "items": [{"item_id": "i1", "product_id": "p1"}]},
}

items := {
	"i2": {"product_id": "p1", "available": true, "price": 5},
	"i3": {"product_id": "p9", "available": true, "price": 5},
	"i4": {"product_id": "p1", "available": false, "price": 5},
}

who := {"id": "who", "tool": "find_user_id_by_email", "ancestors": []}

who_fact := {"args": {"email": "a@example.com"}, "output": "u1", "unresolved": [], "error": null}

# rego-cpp (regopy) applies one `with` per parent path and needs computed values after `as`
# (a bare rule name is not resolved), hence `facts(...)` and `object.union(x, {})`.
facts(steps) := {"steps": steps, "users": users, "orders": orders, "items": items}

step(id, tool) := {"id": id, "tool": tool, "ancestors": ["who"]}

fact(args) := {"args": args, "output": null, "unresolved": [], "error": null}

# One write step `w` after the identity step; returns the rules that denied it.
denied(tool, args) := {v.rule |
	some v in retail.deny with input.plan.steps as [who, step("w", tool)]
		with input.catalog as object.union(catalog_fixture, {})
		with input.config as object.union(config_fixture, {})
		with input.facts as facts({"who": who_fact, "w": fact(args)})
}

asked(tool, args) := {r.rule |
	some r in retail.needs_approval with input.plan.steps as [who, step("w", tool)]
		with input.catalog as object.union(catalog_fixture, {})
		with input.config as object.union(config_fixture, {})
		with input.facts as facts({"who": who_fact, "w": fact(args)})
}

test_compliant_cancel_is_allowed_with_approval if {
	args := {"order_id": "#W1", "reason": "no longer needed"}
	count(denied("cancel_pending_order", args)) == 0
	asked("cancel_pending_order", args) == {"writes.need_approval"}
}

test_cancel_needs_an_allowed_reason if {
	"cancel.reason" in denied("cancel_pending_order", {"order_id": "#W1", "reason": "too slow"})
}

test_cancel_only_pending if {
	"order.pending" in denied("cancel_pending_order", {"order_id": "#W3", "reason": "no longer needed"})
}

test_modify_refuses_item_modified_orders if {
	args := {"order_id": "#W4", "address1": "a", "address2": "", "city": "c", "state": "s", "country": "x", "zip": "1"}
	"order.pending" in denied("modify_pending_order_address", args)
}

test_other_users_order_is_denied if {
	"scope.order_owner" in denied("cancel_pending_order", {"order_id": "#W2", "reason": "no longer needed"})
}

test_other_users_payment_method_is_denied if {
	"scope.payment_method" in denied("modify_pending_order_payment", {"order_id": "#W1", "payment_method_id": "paypal_2"})
}

test_gift_card_must_cover_the_order if {
	"payment.gift_card_balance" in denied("modify_pending_order_payment", {"order_id": "#W1", "payment_method_id": "gift_card_1"})
}

test_swap_to_another_product_is_denied if {
	args := {"order_id": "#W1", "item_ids": ["i1"], "new_item_ids": ["i3"], "payment_method_id": "paypal_1"}
	"items.same_product" in denied("modify_pending_order_items", args)
}

test_swap_to_unavailable_item_is_denied if {
	args := {"order_id": "#W1", "item_ids": ["i1"], "new_item_ids": ["i4"], "payment_method_id": "paypal_1"}
	"items.available" in denied("modify_pending_order_items", args)
}

test_compliant_swap_is_allowed if {
	args := {"order_id": "#W1", "item_ids": ["i1"], "new_item_ids": ["i2"], "payment_method_id": "paypal_1"}
	count(denied("modify_pending_order_items", args)) == 0
}

test_return_only_delivered if {
	"order.delivered" in denied("return_delivered_order_items", {"order_id": "#W1", "item_ids": ["i1"], "payment_method_id": "paypal_1"})
}

test_return_to_original_method_or_gift_card if {
	count(denied("return_delivered_order_items", {"order_id": "#W3", "item_ids": ["i1"], "payment_method_id": "gift_card_1"})) == 0
	count(denied("return_delivered_order_items", {"order_id": "#W3", "item_ids": ["i1"], "payment_method_id": "paypal_1"})) == 0
}

test_large_order_needs_a_supervisor if {
	"operator.amount_threshold" in asked("return_delivered_order_items", {"order_id": "#W3", "item_ids": ["i1"], "payment_method_id": "paypal_1"})
}

test_identity_is_required if {
	rules := {v.rule |
		some v in retail.deny with input.plan.steps as [{"id": "w", "tool": "cancel_pending_order", "ancestors": []}]
			with input.catalog as object.union(catalog_fixture, {})
			with input.config as object.union(config_fixture, {})
			with input.facts as facts({"w": fact({"order_id": "#W1", "reason": "no longer needed"})})
	}
	"identity.required" in rules
}

test_transfer_after_the_writes_is_allowed if {
	rules := {v.rule |
		some v in retail.deny with input.plan.steps as [who, step("w", "cancel_pending_order"), {"id": "t", "tool": "transfer_to_human_agents", "ancestors": ["who", "w"]}]
			with input.catalog as object.union(catalog_fixture, {})
			with input.config as object.union(config_fixture, {})
			with input.facts as facts({"who": who_fact, "w": fact({"order_id": "#W1", "reason": "no longer needed"}), "t": fact({"summary": "x"})})
	}
	not "transfer.out_of_scope" in rules
}

test_transfer_beside_a_write_is_denied if {
	rules := {v.rule |
		some v in retail.deny with input.plan.steps as [who, step("w", "cancel_pending_order"), step("t", "transfer_to_human_agents")]
			with input.catalog as object.union(catalog_fixture, {})
			with input.config as object.union(config_fixture, {})
			with input.facts as facts({"who": who_fact, "w": fact({"order_id": "#W1", "reason": "no longer needed"}), "t": fact({"summary": "x"})})
	}
	"transfer.out_of_scope" in rules
}

test_write_after_a_transfer_is_denied if {
	rules := {v.rule |
		some v in retail.deny with input.plan.steps as [who, {"id": "t", "tool": "transfer_to_human_agents", "ancestors": ["who"]}, {"id": "w", "tool": "cancel_pending_order", "ancestors": ["who", "t"]}]
			with input.catalog as object.union(catalog_fixture, {})
			with input.config as object.union(config_fixture, {})
			with input.facts as facts({"who": who_fact, "w": fact({"order_id": "#W1", "reason": "no longer needed"}), "t": fact({"summary": "x"})})
	}
	"transfer.out_of_scope" in rules
}

test_reviewer_role_is_checked if {
	reasons := retail.approval_denied with input.approval as {"step": "w", "risk": "high", "reviewer": {"id": "bob", "roles": ["reviewer"]}, "requirements": [{"rule": "operator.amount_threshold", "roles": ["admin", "supervisor"]}]}
		with input.actor as {"id": "ann"}
	count(reasons) == 1
}

test_supervisor_may_approve if {
	reasons := retail.approval_denied with input.approval as {"step": "w", "risk": "high", "reviewer": {"id": "sue", "roles": ["supervisor"]}, "requirements": [{"rule": "operator.amount_threshold", "roles": ["admin", "supervisor"]}]}
		with input.actor as {"id": "ann"}
	count(reasons) == 0
}

test_no_self_approval_of_high_risk if {
	reasons := retail.approval_denied with input.approval as {"step": "w", "risk": "high", "reviewer": {"id": "ann", "roles": ["admin"]}, "requirements": [{"rule": "writes.need_approval", "roles": ["admin", "reviewer", "supervisor"]}]}
		with input.actor as {"id": "ann"}
	count(reasons) == 1
}

# Plans written by the LLM planner ------------------------------------------------------

asked_from(source, plan_steps, step_facts) := {[r.step, r.rule] |
	some r in retail.needs_approval with input.plan.steps as plan_steps
		with input.plan.source as source
		with input.catalog as object.union(catalog_fixture, {})
		with input.config as object.union(config_fixture, {})
		with input.facts as facts(step_facts)
}

cancel_w1 := fact({"order_id": "#W1", "reason": "no longer needed"})

test_llm_write_needs_a_reviewer if {
	rules := asked_from("llm", [who, step("w", "cancel_pending_order")], {"who": who_fact, "w": cancel_w1})
	["w", "llm.write_review"] in rules
	not ["w", "llm.amount_threshold"] in rules
}

test_template_write_has_no_llm_rules if {
	rules := asked_from("template", [who, step("w", "cancel_pending_order")], {"who": who_fact, "w": cancel_w1})
	not ["w", "llm.write_review"] in rules
	["w", "writes.need_approval"] in rules
}

test_llm_plan_over_the_threshold_in_total_needs_a_supervisor if {
	# #W1 (100) is under the threshold alone; with #W3 (2000) the plan's writes are over it.
	plan_steps := [who, step("a", "cancel_pending_order"), step("b", "return_delivered_order_items")]
	step_facts := {
		"who": who_fact,
		"a": cancel_w1,
		"b": fact({"order_id": "#W3", "item_ids": ["i1"], "payment_method_id": "paypal_1"}),
	}
	rules := asked_from("llm", plan_steps, step_facts)
	["a", "llm.amount_threshold"] in rules
	["b", "llm.amount_threshold"] in rules
	not ["a", "operator.amount_threshold"] in rules
}

test_llm_plans_split_under_the_threshold_still_add_up if {
	# Two orders of 600 each: neither is over 1000, together they are.
	split_orders := object.union(orders, {
		"#W5": {"user_id": "u1", "status": "pending", "total": 600, "payment_method_id": "paypal_1", "items": []},
		"#W6": {"user_id": "u1", "status": "pending", "total": 600, "payment_method_id": "paypal_1", "items": []},
	})
	rules := {[r.step, r.rule] |
		some r in retail.needs_approval with input.plan.steps as [who, step("a", "cancel_pending_order"), step("b", "cancel_pending_order")]
			with input.plan.source as "llm"
			with input.catalog as object.union(catalog_fixture, {})
			with input.config as object.union(config_fixture, {})
			with input.facts as {"steps": {"who": who_fact, "a": fact({"order_id": "#W5", "reason": "no longer needed"}), "b": fact({"order_id": "#W6", "reason": "no longer needed"})}, "users": users, "orders": split_orders, "items": items}
	}
	["a", "llm.amount_threshold"] in rules
	["b", "llm.amount_threshold"] in rules
}
