"""Audits: per-image results, checks, statistics and baselines."""
