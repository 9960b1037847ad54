"""Stacks by capability (DESIGN.md section 7): data, search, api, events; observability follows."""
