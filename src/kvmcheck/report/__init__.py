"""Counterexample reports: text, JSON and HTML."""
