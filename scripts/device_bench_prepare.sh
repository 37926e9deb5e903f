#!/usr/bin/env bash
# Fill .devbench/ (git-ignored through .git/info/exclude) with what scripts/device_bench.sh needs on a lent GPU
# machine that has python3.12, torch, torchvision, numpy, pillow, rich, pyyaml, ... but no internet and none of
# cvtrain's other dependencies:
#   .devbench/whl/     cp312 manylinux wheels of the compiled packages (pycocotools, faster-coco-eval, simplejpeg),
#                      at the versions of this checkout's .venv; device_bench.sh installs them into /tmp/site
#   .devbench/site/    the pure-python ones copied from .venv (hydra-core, omegaconf, antlr4-python3-runtime),
#                      plus a cvtrain dist-info so `cvtrain --version` answers without `pip install -e .`
#   .devbench/photos/  the real JPEG fixtures (COCO sample, VOC sample, imagenet-mini)
# Run it from anywhere on this (CPU) machine: bash scripts/device_bench_prepare.sh
# Then on the device: bash scripts/device_bench.sh, with `carry: [".devbench"]`.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
VENV_PY=${VENV_PY:-$REPO/.venv/bin/python}
FIXTURES=${FIXTURES:-$(cd "$REPO/../shared/fixtures" 2>/dev/null && pwd || echo /work/shared/fixtures)}
SP=$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
DEV=$REPO/.devbench

# Ignored locally only: .git/info/exclude, not .gitignore.
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qxF '/.devbench/' "$EXCLUDE" 2>/dev/null || echo '/.devbench/' >> "$EXCLUDE"
git check-ignore -q .devbench/x || { echo "prepare: .devbench is not ignored by git" >&2; exit 1; }

rm -rf "$DEV"
mkdir -p "$DEV/whl" "$DEV/site" "$DEV/photos"

version_of() { "$VENV_PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }

# 1. Compiled packages: cp312 manylinux x86_64 wheels, the .venv's versions.
for name in pycocotools faster-coco-eval simplejpeg; do
    ver=$(version_of "$name")
    ok=0
    for plats in \
        "manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64" \
        "manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64"; do
        args=()
        for p in $plats; do args+=(--platform "$p"); done
        if "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            "${args[@]}" -d "$DEV/whl" "$name==$ver" 2> >(grep -v "is ignored: it is neither" >&2); then
            ok=1
            break
        fi
    done
    [ "$ok" = 1 ] || { echo "prepare: no cp312 manylinux wheel of $name==$ver" >&2; exit 1; }
done

# 2. Pure-python packages, copied from the .venv (no __pycache__: the device runs 3.12).
for dist in hydra-core omegaconf antlr4-python3-runtime; do
    "$VENV_PY" - "$dist" "$SP" "$DEV/site" <<'EOF'
import importlib.metadata as m, shutil, sys
from pathlib import Path

dist, sp, dest = m.distribution(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
tops = set()
for f in dist.files:
    top = f.parts[0]
    if top.endswith(".dist-info") or top == ".." or top.startswith("__"):
        continue
    if f.parts[-1].endswith((".so", ".pyd")):
        sys.exit(f"{sys.argv[1]} is not pure python: {f}")
    tops.add(top)
tops.add(Path(dist._path).name)  # its dist-info, so importlib.metadata finds it
ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
for top in sorted(tops):
    src = sp / top
    if src.is_dir():
        shutil.copytree(src, dest / top, ignore=ignore, dirs_exist_ok=True)
    elif src.is_file():
        shutil.copy2(src, dest / top)
print(f"  {sys.argv[1]} {dist.version}: {', '.join(sorted(tops))}")
EOF
done
# cvtrain's own metadata (`cvtrain --version` reads it); the code itself travels with the working tree.
cv_ver=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
mkdir -p "$DEV/site/cvtrain-$cv_ver.dist-info"
printf 'Metadata-Version: 2.1\nName: cvtrain\nVersion: %s\n' "$cv_ver" > "$DEV/site/cvtrain-$cv_ver.dist-info/METADATA"

# 3. The real photos.
mkdir -p "$DEV/photos/coco" "$DEV/photos/voc" "$DEV/photos/imagenet-mini"
cp "$FIXTURES"/coco-sample/images/*.jpg "$DEV/photos/coco/"
cp "$FIXTURES"/voc-sample/VOCdevkit/VOC2012/JPEGImages/*.jpg "$DEV/photos/voc/"
cp -r "$FIXTURES"/imagenet-mini/train "$FIXTURES"/imagenet-mini/val "$DEV/photos/imagenet-mini/"

ls -la "$DEV/whl"
echo "photos: $(find "$DEV/photos" -type f | wc -l) files"
du -sh "$DEV"
