"""Idempotency keys: a retried write (same `Idempotency-Key`) is applied once and answered again."""
