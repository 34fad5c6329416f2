#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py), run on the GPU machine from the repository root. That machine
# reaches no package registry: serkit's dependencies its image lacks come as wheels in the pack that
# `python benchmarks/gpu_pack.py` made here (gitignored gpu_pack/, sent with the run tool's carry). They are
# installed into a private folder, not into the image's environment; serkit itself runs from src/.
#   bash benchmarks/gpu_check.sh --out "$OUT/gpu_check.json" [gpu_check.py options]
# GPU_PACK overrides the pack folder (default gpu_pack), PYTHON the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
pack=${GPU_PACK:-gpu_pack}
python=${PYTHON:-python3}
site=$(mktemp -d /tmp/serkit_site.XXXXXX)
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$pack"/wheels/*.whl
export PYTHONPATH="$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$python" benchmarks/gpu_check.py --pack "$pack" "$@"
