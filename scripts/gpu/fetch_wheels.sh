#!/usr/bin/env bash
# Downloads, here, the Python 3.12 wheels the GPU checks need and the device machine lacks
# (its image has torch, numpy, scipy, onnxruntime, but not nnU-Net) into .whl/, which git
# ignores. Pure-Python packages published only as source are built into wheels here.
# SimpleITK is left out: its 53 MB wheel and the working tree do not fit in one transfer
# (64 MiB); the checks read no image file (see scripts/gpu/placeholder).
# Versions: those of this checkout's .venv (made by scripts/setup.sh), read from its package
# metadata, so the device runs what the CPU tests ran: setup.sh pins nnunetv2 and
# dynamic-network-architectures and leaves the rest (blosc2 included) to pip, as
# requirements.txt does; a literal pin here would drift from them. The list: nnU-Net's packages
# and what their import pulls in beyond the device image (torch, numpy, scipy, onnxruntime,
# matplotlib); blosc2 4.15 imports msgpack, httpx, idna and threadpoolctl (measured with
# `import blosc2` here), not numexpr any more. Then run scripts/gpu/checks.sh on the device with
# .whl carried (see that script).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
rm -rf .whl && mkdir .whl  # no wheel of an older run beside the new ones (checks.sh installs .whl/*.whl)
PY=${PYTHON:-python3}
VENV_PY=${VENV_PYTHON:-.venv/bin/python}
BINARY=(blosc2 ndindex msgpack connected-components-3d)
PURE=(nnunetv2 dynamic-network-architectures acvl-utils batchgenerators batchgeneratorsv2 nibabel
      httpx idna threadpoolctl importlib-resources future graphviz yacs linecache2 traceback2 unittest2)
pinned() {  # "name==version" of each distribution as installed in the .venv; fails if one is missing
  "$VENV_PY" -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' "$@"
}
binary=$(pinned "${BINARY[@]}") && pure=$(pinned "${PURE[@]}")
read -ra BINARY <<< "$binary"
read -ra PURE <<< "$pure"
echo "versions of $VENV_PY: ${BINARY[*]} ${PURE[*]}"
PLATFORMS=()
for n in 39 35 34 31 28 27 24 17; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${BINARY[@]}"
for spec in "${PURE[@]}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl "$spec" 2>/dev/null ||
    "$PY" -m pip wheel -q --no-deps -w .whl "$spec"
done
ls -1 .whl
du -sh .whl
