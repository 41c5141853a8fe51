"""Flow collector: codec, templates, times, sampling and aggregation (no database, no sockets)."""
