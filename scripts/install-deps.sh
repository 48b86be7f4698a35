#!/usr/bin/env bash
# Installs what hvguard needs to build, run and test, from Debian's archive.
# Idempotent: packages already present are not touched, and apt-get update
# runs only when something is missing.
set -euo pipefail

build_pkgs=(make clang llvm gcc pkg-config bpftool libbpf-dev libelf-dev zlib1g-dev
	libyaml-dev libjson-c-dev libmicrohttpd-dev criu libsystemd-dev)
test_pkgs=(libcmocka-dev qemu-system-x86 qemu-utils python3 python3-yaml jq bpftrace prometheus
	busybox-static cpio zstd xz-utils kmod libclang-rt-14-dev
	systemd lintian dpkg-dev man-db python3-jsonschema clang-format)

want=("${build_pkgs[@]}")
[ "${1:-}" = "--tests" ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "hvguard: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "hvguard: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
