#!/usr/bin/env bash
# Installs what anvil needs to build and test, from Debian's packages; idempotent and
# fast when everything is present (one dpkg query). Then sets up the Python venv used for
# model export and the onnxruntime oracle (scripts/setup_python.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PKGS=(
  build-essential cmake ninja-build ccache pkg-config
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  libgtest-dev libgmock-dev libflatbuffers-dev flatbuffers-compiler
  libcli11-dev nlohmann-json3-dev libboost-context-dev libxxhash-dev
  python3-venv python3-numpy python3-torch python3-torchvision
  python3-sklearn python3-matplotlib
  libsodium-dev libsqlite3-dev libhiredis-dev redis-server
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[install_deps] installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "[install_deps] Debian packages present" >&2
fi

if [ "${ANVIL_SKIP_PYTHON:-0}" != "1" ]; then
  "$ROOT/scripts/setup_python.sh" >/dev/null
fi
