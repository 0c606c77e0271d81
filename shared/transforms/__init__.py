"""Transforms shared by the bundles."""
