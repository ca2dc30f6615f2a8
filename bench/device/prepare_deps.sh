#!/usr/bin/env bash
# Fills .devcarry/deps (git-ignored) with the header-only dependencies and GoogleTest sources
# that the GPU machine lacks (it has no package manager). Run here before a device call; the
# call carries .devcarry. See bench/device/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
d=.devcarry/deps
rm -rf "$d" && mkdir -p "$d/include"
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/fmt "$d/include/"
cp -r /usr/src/googletest "$d/googletest"
du -sh "$d"
