"""The names a user picks from, shared by the command line, the plugin and the YAML loader.

Imports nothing, so that reading it never loads the engine.
"""

DEVICES = ("auto", "cpu", "cuda")  # and "cuda:N", the N-th GPU
DEVICE_TEXT = "auto, cpu, cuda or cuda:N"


def is_device(value: object) -> bool:
    """Whether ``value`` names a device: one of `DEVICES`, or ``cuda:N`` for a GPU index."""
    if not isinstance(value, str):
        return False
    kind, _, index = value.partition(":")
    return value in DEVICES or (kind == "cuda" and index.isdigit())


PRESETS = ("default", "rex")
DIRECTIONS = ("incorrect_larger", "correct_larger", "different")
ANOMALY_REFERENCES = ("correct", "all")  # or a baseline file
ANOMALY_DIRECTIONS = ("both", "larger", "smaller")
FOLDER_LABELS = "folders"  # labels= value: each image's class is its folder's name
EXTRAS_HINT = (
    "pip install onnxruntime (or onnxruntime-gpu for CUDA), or install pytest-mps with its cpu "
    "or gpu extra"
)
