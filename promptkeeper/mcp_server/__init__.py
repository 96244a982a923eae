"""Prompts over the Model Context Protocol.

`bridge` is the server, `stdio` serves it as `promptkeeper mcp`, `http` mounts it at `/mcp`.
"""
