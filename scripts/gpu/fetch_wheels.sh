#!/usr/bin/env bash
# Downloads, here, the Python 3.12 wheels the GPU checks need and the device machine lacks
# (its image has torch, numpy, scipy, onnxruntime, but not nnU-Net) into .whl/, which git
# ignores. Pure-Python packages published only as source are built into wheels here.
# SimpleITK is left out: its 53 MB wheel and the working tree do not fit in one transfer
# (64 MiB); the checks read no image file (see scripts/gpu/placeholder).
# Pins: the versions scripts/setup.sh installs. Then run scripts/gpu/checks.sh on the device
# with .whl carried (see that script).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
mkdir -p .whl
PY=${PYTHON:-python3}
BINARY=(blosc2==4.14.1 ndindex==1.10.1 numexpr==2.14.2 connected-components-3d==4.1.1
)
PURE=(nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 acvl-utils==0.2.6 batchgenerators==0.25.5
      batchgeneratorsv2==0.3.6 nibabel==5.4.2 importlib-resources==7.1.0 future==1.0.0 graphviz==0.21
      yacs==0.1.8 linecache2==1.0.0 traceback2==1.4.0 unittest2==1.1.0)
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
