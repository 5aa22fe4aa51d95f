"""Fixture plugin: registry (see tests/conftest.py)."""
