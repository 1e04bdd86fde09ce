"""Helpers more than one test module needs; fixtures live in the conftest.py files."""
