"""Mechanism implementations, one module per family."""
