"""Measurements: data matrices, one runner per kind of run, results folders, plots."""
