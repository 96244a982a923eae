"""Projects, API keys and roles."""
