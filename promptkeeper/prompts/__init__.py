"""The registry: prompts, immutable versions, environments, releases and deployment history."""
