"""The names a user picks from, shared by the command line, the plugin and the YAML loader.

Imports nothing, so that reading it never loads the engine.
"""

DEVICES = ("auto", "cpu", "cuda")
PRESETS = ("default", "rex")
CHECKS = ("concentration", "correct_vs_incorrect", "anomalies", "baseline", "default_class")
DIRECTIONS = ("incorrect_larger", "correct_larger", "different")
ANOMALY_METHODS = ("mad", "iqr")
ANOMALY_SCALES = ("log", "linear")
ANOMALY_REFERENCES = ("correct", "all")  # or a baseline file
FOLDER_LABELS = "folders"  # labels= value: each image's class is its folder's name
EXTRAS_HINT = 'pip install "pytest-mps[cpu]" (or "pytest-mps[gpu]" for CUDA)'
