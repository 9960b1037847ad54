"""Model providers: one port (complete, stream) and its adapters."""
