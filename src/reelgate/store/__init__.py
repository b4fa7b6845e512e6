"""Persistence: one schema on SQLite or PostgreSQL, migrations, and the engine's SQL."""
