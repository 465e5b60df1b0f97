"""Bundled scenarios: harnesses over the models, each with its expected verdicts."""
