"""Audits: per-image results judged by checks (one registry), their statistics, baselines and
the one payload every report reads. Plain Python: no engine run, no pytest."""
