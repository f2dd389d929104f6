"""Entrypoints: HTTP routers and the process main."""
