#!/usr/bin/env bash
# Create benchmarks/.venv-rex: an isolated virtualenv holding the peer tool, ReX (rex-xai 0.4.1).
# ReX pins numpy==1.26.4 and needs torch, so it never shares an environment with pytest-mps.
# Usage: bash benchmarks/setup_rex.sh   (idempotent; PYTHON=python3.11 to pick the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-rex"
python="${PYTHON:-python3}"
torch_wheel="${TORCH_WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --quiet)

# torch first, from the local CPU wheel when present (otherwise pip resolves a CUDA build).
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    if [[ ! -f "$torch_wheel" ]]; then
        echo "no CPU torch wheel at $torch_wheel: set TORCH_WHEEL (PyPI's torch is a CUDA build)" >&2
        exit 1
    fi
    "${pip[@]}" "$torch_wheel"
fi

# The same onnxruntime as the project's venv, so both tools run the same inference library.
ort_spec="onnxruntime"
project_python="$here/../.venv/bin/python"
if [[ -n "${ORT_VERSION:-}" ]]; then
    ort_spec="onnxruntime==$ORT_VERSION"
elif [[ -x "$project_python" ]] && "$project_python" -c "import onnxruntime" 2>/dev/null; then
    ort_spec="onnxruntime==$("$project_python" -c "import onnxruntime; print(onnxruntime.__version__)")"
fi

"${pip[@]}" "rex-xai==0.4.1" "$ort_spec"
"$venv/bin/python" -c "import rex_xai, onnxruntime, numpy, torch; \
print('rex-xai ready: onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__, \
'torch', torch.__version__)"
