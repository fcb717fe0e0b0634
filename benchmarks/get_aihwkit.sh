#!/usr/bin/env bash
# Fetch IBM aihwkit's Python sources for the cross-check (benchmarks/aihwkit_check.py), without
# building its C++ extension: only its pure-torch inference tile (TorchInferenceRPUConfig) is
# used, and a stand-in for the extension module lets that import. An optional extra for one
# benchmark, never a dependency of cimc. Writes ~/.cache/cimc/aihwkit/ (nothing in the repo).
set -euo pipefail
VERSION="${AIHWKIT_VERSION:-1.2.0}"
DEST="${CIMC_CACHE:-$HOME/.cache/cimc}/aihwkit"
PY="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
mkdir -p "$DEST"
if [ ! -d "$DEST/aihwkit-$VERSION/src/aihwkit" ]; then
  # the source archive (its metadata step fetches aihwkit's build tools as wheels; nothing is compiled)
  "$PY" -m pip download --no-deps -d "$DEST" "aihwkit==$VERSION"
  tar -xzf "$DEST/aihwkit-$VERSION.tar.gz" -C "$DEST"
fi
cat > "$DEST/aihwkit-$VERSION/src/aihwkit/simulator/rpu_base.py" <<'PY'
"""Stand-in for aihwkit's C++ extension (written by cimc's benchmarks/get_aihwkit.sh): the
torch tiles import through it; any use of the C++ simulator fails."""


class _Missing:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return _Missing


class _Namespace:
    def __getattr__(self, name):
        return type(name, (_Missing,), {})


tiles = _Namespace()
devices = _Namespace()


class cuda:  # noqa: N801
    @staticmethod
    def is_compiled():
        return False
PY
echo "$DEST/aihwkit-$VERSION/src"
