"""Fixture plugin: hub (see tests/conftest.py)."""
