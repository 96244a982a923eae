"""The deployment room: every deploy, promote and rollback, and the policy they pass.

`releases` changes a release (history row, revision, post-commit invalidation) and answers what
ran where and when; `policy` decides whether a change is allowed (protection, reviews, gates,
override, promotion path) and is what every caller goes through; `pending` holds deploys that wait
for an evaluation run; `promotion` is what a finished run sets off. Gates (`evaluations.gates`)
and reviews (`workflow.reviews`) are the policy it asks.
"""
