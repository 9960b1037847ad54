"""Parley: a self-hosted serverless conversation API for AWS."""

__version__ = "0.1.0"
