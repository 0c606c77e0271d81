"""Losses shared by the bundles."""
