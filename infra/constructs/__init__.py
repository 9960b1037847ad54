"""Reusable constructs, one per capability: tables, functions (and layers), API."""
