"""督导 reports: what a scope delivered in a period, aggregated in SQL (SQLite and PostgreSQL)."""
