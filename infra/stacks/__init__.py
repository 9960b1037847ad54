"""Stacks by capability (DESIGN.md section 7): data, api; search, events and observability follow."""
