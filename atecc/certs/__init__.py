"""Certificates: compressed format, templates, and rebuilding X.509 DER from the chip."""
