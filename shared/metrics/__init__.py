"""Metrics shared by the bundles."""
