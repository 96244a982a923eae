"""Team workflow: drafts and merge, reviews and protected environments, policy-checked deploys."""
