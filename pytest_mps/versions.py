"""The engine's version, readable without loading the engine: results, reports and baseline
files name it. What changed in each version, in sizes and evaluations: CHANGELOG.md."""

ENGINE_VERSION = "0.10.0"
