"""The outcome fields an application reports about a request: one list for the SDK and the server.

Flags are true/false (`thumbs` is "up"/"down"); numbers are non-negative measurements (`rating` 1-5).
"""

FLAGS = ("completed", "thumbs", "edited", "regenerated", "safety_flag")
NUMBERS = ("rating", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd")
FIELDS = FLAGS + NUMBERS
