"""Runtimes that drive the handlers: the Lambda streaming adapter and the local server."""
