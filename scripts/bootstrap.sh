#!/usr/bin/env bash
# Set up worldgen on a fresh Debian/Ubuntu machine: system libraries, a virtualenv, the package.
#   scripts/bootstrap.sh          what `worldgen pano` needs
#   scripts/bootstrap.sh --test   also the test tools (Chromium, the Khronos glTF validator)
# Re-running is cheap: each step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

apt_packages=(libusb-1.0-0 libgomp1)   # open3d links libusb; torch/open3d use OpenMP
if [ "$WITH_TEST" = 1 ]; then
  apt_packages+=(chromium libegl1 libgl1 libvulkan1 mesa-vulkan-drivers)
  # Node may come from elsewhere (nodesource, nvm); Debian's npm would conflict with it.
  command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${missing[*]}" >&2
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q)
# Without an NVIDIA GPU take the CPU build of torch (a plain `torch` pulls gigabytes of CUDA);
# with one, PyPI's default Linux build is the CUDA one.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "${PIP[@]}" torch
  else
    "${PIP[@]}" torch==2.13.0 || "${PIP[@]}" torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
extras=".[view,web]"   # `make demo` installs the viewer too; plain `pip install worldgen` leaves it out
[ "$WITH_TEST" = 1 ] && extras=".[test,view,web,train]"
"${PIP[@]}" -e "$extras"

if [ "$WITH_TEST" = 1 ] && [ ! -f .tools/node_modules/gltf-validator/package.json ] && command -v npm >/dev/null; then
  mkdir -p .tools && (cd .tools && npm install --silent --no-audit --no-fund gltf-validator >/dev/null 2>&1) \
    || echo "bootstrap: gltf-validator could not be installed; the validator test will say so" >&2
fi
# three.js: the GLB render tests load worlds with its GLTFLoader in headless Chromium.
if [ "$WITH_TEST" = 1 ] && [ ! -f .tools/node_modules/three/package.json ] && command -v npm >/dev/null; then
  mkdir -p .tools && (cd .tools && npm install --silent --no-audit --no-fund three >/dev/null 2>&1) \
    || echo "bootstrap: three could not be installed; the three.js render tests will say so" >&2
fi
echo "bootstrap: ready ($VENV)" >&2
