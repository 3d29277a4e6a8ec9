"""tongke service: app factory, settings, CLI, HTTP API, accounts, tokens, metrics."""
