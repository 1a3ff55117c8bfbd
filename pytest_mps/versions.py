"""The engine's version, readable without loading the engine: the reports and baseline files
name it. `pytest_mps.engine.explainer.ENGINE_VERSION` is this one (its history is there)."""

ENGINE_VERSION = "0.10.0"
