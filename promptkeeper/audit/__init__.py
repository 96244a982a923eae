"""The audit log and the webhooks it feeds.

It sits below every domain (DESIGN.md's layering has it under `prompts`): each service appends its
audit entry in its own transaction, and the webhook deliveries an entry triggers are written in
that same transaction (an outbox), so an action is never recorded without its notification or
notified without being recorded, and delivery happens after the commit without blocking it.
"""
