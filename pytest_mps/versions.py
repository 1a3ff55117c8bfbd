"""The package's and the engine's versions, readable without loading anything: results,
reports and baseline files name them. What changed in each engine version, in sizes and
evaluations: CHANGELOG.md."""

PACKAGE_VERSION = "0.1.0"  # pytest_mps.__version__, as pyproject.toml names it
ENGINE_VERSION = "0.12.0"
