#!/usr/bin/env bash
# Download, on a machine that reaches PyPI, the wheels a lent GPU machine
# lacks (scripts/gpu_requirements.txt) into wheels/, which git ignores and
# which travels with the call that runs scripts/gpu_check.sh there (name it
# among the paths the call carries). gpu_check.sh installs from it offline.
#
#   bash scripts/gpu_wheels.sh                      # Python 3.12, x86-64 Linux
#   bash scripts/gpu_wheels.sh --python-version 3.11 --dest other/folder
#
# Prints the folder's size: keep it small (it is copied with the call).
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=3.12
DEST=wheels
while [ $# -gt 0 ]; do
    case $1 in
        --python-version) PYVER=$2; shift 2 ;;
        --dest) DEST=$2; shift 2 ;;
        *) echo "usage: $0 [--python-version X.Y] [--dest DIR]" >&2; exit 2 ;;
    esac
done
rm -rf "$DEST"
mkdir -p "$DEST"
python -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$PYVER" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --dest "$DEST" -r scripts/gpu_requirements.txt
ls -1 "$DEST"
du -sh "$DEST"
