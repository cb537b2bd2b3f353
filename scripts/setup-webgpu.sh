#!/usr/bin/env bash
# A CPU Vulkan driver for the webgpu backend (Dawn, from the npm package `webgpu`) on a machine
# without a GPU, for CI and for development.
#
# Debian 12's own lavapipe (Mesa 22.3) is refused by Dawn (it lacks the uniform-array dynamic
# indexing features), so this takes `mesa-vulkan-drivers` from the backports suite of the mirror
# the machine already uses, extracts it with dpkg-deb into .vulkan/ (the system's Mesa is left
# untouched) and writes an ICD file for its lavapipe. The webgpu backend finds .vulkan/icd.json
# by itself when VK_ICD_FILENAMES is unset (src/backend/webgpu/node.ts); `source` the line this
# script prints to point other programs at it.
#
# Usage: bash scripts/setup-webgpu.sh        (as root, or with sudo for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="$PWD/.vulkan"
icd="$dest/icd.json"
if [ -f "$icd" ] && [ -f "$(sed -n 's/.*"library_path": *"\([^"]*\)".*/\1/p' "$icd")" ]; then
  echo "export VK_ICD_FILENAMES=$icd"
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

. /etc/os-release
codename="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"

# The Vulkan loader and the libraries lavapipe links against, from the system's own suite.
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends \
  libvulkan1 libllvm15 libdrm2 libelf1 libexpat1 libwayland-client0 libx11-xcb1 libxcb1 \
  libxcb-dri3-0 libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 \
  libxshmfence1 libzstd1 zlib1g >/dev/null

# The mirror: the first Debian archive URI in the machine's apt sources (deb822 or one-line form).
mirror="$(
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'; } |
    grep -v -- '-security' | grep -m1 'debian' || true
)"
mirror="${mirror:-http://deb.debian.org/debian}"
echo "[setup-webgpu] mesa-vulkan-drivers from $mirror $codename-backports" >&2

apt_dir="$dest/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/sources.list.d"
: > "$apt_dir/sources.list"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $codename-backports main" > "$apt_dir/sources.list.d/backports.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache::archives=$apt_dir/archives"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" update -qq >&2
(cd "$apt_dir/archives" && apt-get "${apt_opts[@]}" download -qq mesa-vulkan-drivers >&2)
deb="$(ls "$apt_dir"/archives/mesa-vulkan-drivers_*.deb | head -1)"
rm -rf "$dest/root"
dpkg-deb -x "$deb" "$dest/root"
lib="$(find "$dest/root" -name libvulkan_lvp.so | head -1)"
[ -n "$lib" ] || { echo "[setup-webgpu] no libvulkan_lvp.so in $deb" >&2; exit 1; }
cat > "$icd" <<EOF
{ "file_format_version": "1.0.0", "ICD": { "library_path": "$lib", "api_version": "1.3.0" } }
EOF
echo "[setup-webgpu] lavapipe: $(basename "$deb") -> $icd" >&2
echo "export VK_ICD_FILENAMES=$icd"
