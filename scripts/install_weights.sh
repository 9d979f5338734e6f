#!/usr/bin/env bash
# Install weight files into detailclip/weights/ atomically: each is copied to a temporary name in
# that folder, then renamed, so a kill never leaves a truncated file under its real name.
# Usage: scripts/install_weights.sh FILE [FILE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p detailclip/weights
for file in "$@"; do
    if [ ! -f "$file" ]; then
        echo "error: no weight file $file" >&2
        exit 1
    fi
done
for file in "$@"; do
    tmp=$(mktemp "detailclip/weights/.$(basename "$file").XXXXXX")
    cp "$file" "$tmp" && chmod 644 "$tmp" || { rm -f "$tmp"; exit 1; }
    mv -f "$tmp" "detailclip/weights/$(basename "$file")"
done
