"""Helpers shared by the tests: a small hand-built KPI mart and a real SMTP server."""
