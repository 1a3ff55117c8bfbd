"""pytest-mps: minimal sufficient pixel sets of image classifiers, as pytest release gates.

Public API: :func:`explain` for one image, :class:`Engine` to explain many with one model.
The engine (onnxruntime, scipy) is imported on first use so that the pytest plugin stays light.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pytest_mps.versions import PACKAGE_VERSION

if TYPE_CHECKING:
    from pytest_mps.engine.explainer import Engine
    from pytest_mps.engine.result import Explanation

__all__ = ["Engine", "Explanation", "explain"]
__version__ = PACKAGE_VERSION


def explain(
    model: str | os.PathLike[str], image: str | os.PathLike[str], **options: Any
) -> Explanation:
    """Explain one image with one model; ``options`` as for :class:`Engine`."""
    from pytest_mps.engine.explainer import Engine

    return Engine(model, **options).explain(image)


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from pytest_mps.engine.explainer import Engine

        return Engine
    if name == "Explanation":
        from pytest_mps.engine.result import Explanation

        return Explanation
    raise AttributeError(name)
