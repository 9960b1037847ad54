"""Parley's CDK app: stacks by capability, functions and integrations generated from the route table.

Run from the repository root: `python infra/app.py` (what cdk.json and `make synth` do) or
`python -m infra.app`; `python -m infra.layers` builds the two Lambda layers first.
"""
