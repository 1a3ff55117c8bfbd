"""An audit built from its images' results (records, object masks, the `Audit`), and how its
paths are named: relative to the rootdir."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from pytest_mps.audit.audit import Audit
from pytest_mps.audit.records import ImageRecord
from pytest_mps.engine.model import Classifier
from pytest_mps.engine.result import Explanation
from pytest_mps.session.inputs import ImageSpec
from pytest_mps.session.masks import read_mask


def build_audit(
    name: str,
    classifier: Classifier,
    paths: list[Path],
    results: list[tuple[Explanation, bool]],
    truth: dict[Path, int | None],
    mask_files: dict[Path, Path | None] | None,
    *,
    identity: str,
    rootdir: Path,
    update_baselines: bool,
    started: float,
) -> Audit:
    """The audit ``name`` of ``paths`` under ``classifier``: each image's result and whether it
    came from the cache, its true class (``truth``) and, where object masks were given
    (``mask_files``), its object mask; ``identity`` the audit's identity text, ``started``
    when its work began (`time.perf_counter`)."""
    records = [
        dataclasses.replace(
            ImageRecord.from_explanation(result, truth[path], cached=cached),
            path=relative(path, rootdir),
        )
        for path, (result, cached) in zip(paths, results, strict=True)
    ]
    targets: dict[str, np.ndarray | None] = {}
    if mask_files is not None:
        targets = {
            record.path: _object_mask(mask_files[path], result)
            for path, record, (result, _) in zip(paths, records, results, strict=True)
        }
        records = [
            record.localised(result, targets[record.path])
            for record, (result, _) in zip(records, results, strict=True)
        ]
    first = results[0][0]
    return Audit(
        name=name,
        model=relative(classifier.path, rootdir),
        model_sha256=classifier.sha256,
        provider=first.provider,
        settings=first.config,
        records=records,
        explanations={
            record.path: result for record, (result, _) in zip(records, results, strict=True)
        },
        update_baselines=update_baselines,
        rootdir=rootdir,
        identity=hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16],
        run_seconds=time.perf_counter() - started,
        object_masks={path: mask for path, mask in targets.items() if mask is not None},
    )


def _object_mask(path: Path | None, result: Explanation) -> np.ndarray | None:
    """The object mask in ``path`` (None: the image has none), in the result's original grid."""
    return None if path is None else read_mask(path, result.original_mask.shape)


def absolute(path: str | os.PathLike[str], base: Path) -> Path:
    """``path``, a relative one taken from ``base``."""
    path = Path(path)
    return path if path.is_absolute() else base / path


def relative(path: Path, rootdir: Path) -> str:
    """``path`` relative to the rootdir, else with its ``..`` folded away."""
    try:
        return path.resolve().relative_to(rootdir.resolve()).as_posix()
    except ValueError:
        return Path(os.path.normpath(path)).as_posix()


def describe_images(images: ImageSpec, base: Path, rootdir: Path) -> str:
    """An audit's images in a few words: their folder or pattern, or how many."""
    if isinstance(images, str | os.PathLike):
        return relative(absolute(images, base), rootdir)
    return f"{len(images)} images"
