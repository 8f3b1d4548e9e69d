"""Minimum-area sieve of classified rasters."""
