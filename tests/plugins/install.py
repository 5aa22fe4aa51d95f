"""Fixture plugin: install (see tests/conftest.py)."""
