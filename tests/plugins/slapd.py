"""Fixture plugin: slapd (see tests/conftest.py)."""
