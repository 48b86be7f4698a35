#!/usr/bin/env bash
# Fetches Debian's generic amd64 kernel (the one linux-image-amd64 points to)
# into a directory, without installing it: the package is unpacked with
# dpkg-deb, modules.dep is generated with depmod, and the bzImage is
# decompressed to a plain vmlinux ELF (QEMU's multiboot loader and Xen boot
# it directly, and under TCG it saves the ~5 s the decompressor would take).
#
# CLI:     tests/lib/debian-kernel.sh DIR
#          tests/lib/debian-kernel.sh DIR --modules MOD...   (also print the
#          .ko paths needed to load MOD..., dependencies first, one a line)
# Library: source it, then   debian_kernel_fetch DIR
#                            debian_kernel_modules DIR MOD...
# After a fetch DIR holds: vmlinux, vmlinuz, config, System.map, version
# (the uname -r), lib/modules/VERSION/... (uncompressed .ko files).
# A second fetch of the same version does nothing.

# The package name: linux-image-amd64 depends on linux-image-6.1.0-N-amd64,
# and N moves with security updates, so ask apt rather than hard-coding it.
debian_kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# Finds the compressed payload in a bzImage by its magic and decompresses
# it, trying each candidate offset until one yields an ELF file.
debian_kernel_extract_vmlinux() { # bzImage out
	local img=$1 out=$2 magic tool off
	for pair in 'fd377a585a00:xz -dcq' '28b52ffd:zstd -dcq' '1f8b0800:gzip -dcq' \
		'894c5a4f:lzop -dcq' '425a68:bzip2 -dcq' '02214c18:lz4 -dc'; do
		magic=${pair%%:*}
		tool=${pair#*:}
		command -v "${tool%% *}" >/dev/null || continue
		pattern=$(echo "$magic" | sed 's/../\\x&/g')
		for off in $(LC_ALL=C grep -obUaP "$pattern" "$img" | cut -d: -f1 | head -5); do
			tail -c +$((off + 1)) "$img" | $tool >"$out.tmp" 2>/dev/null
			if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
				mv "$out.tmp" "$out"
				return 0
			fi
		done
	done
	rm -f "$out.tmp"
	echo "debian-kernel: no known compressed vmlinux inside $img" >&2
	return 1
}

debian_kernel_fetch() { # dir
	local dir=$1 pkg ver deb tmp
	pkg=$(debian_kernel_package)
	if [ -z "$pkg" ]; then
		echo "debian-kernel: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
		return 1
	fi
	ver=${pkg#linux-image-}
	if [ -f "$dir/version" ] && [ "$(cat "$dir/version")" = "$ver" ] && [ -s "$dir/vmlinux" ]; then
		return 0
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	tmp=$(mktemp -d "$dir/.fetch.XXXXXX") || return 1
	(cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/apt.err") || {
		echo "debian-kernel: apt-get download $pkg failed: $(tail -1 "$tmp/apt.err")" >&2
		rm -rf "$tmp"
		return 1
	}
	deb=$(ls "$tmp"/*.deb)
	rm -rf "$dir/lib" "$dir/vmlinux"
	dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; return 1; }
	mkdir -p "$dir/lib"
	mv "$tmp/root/lib/modules" "$dir/lib/modules"
	cp "$tmp/root/boot/vmlinuz-$ver" "$dir/vmlinuz"
	cp "$tmp/root/boot/config-$ver" "$dir/config"
	cp "$tmp/root/boot/System.map-$ver" "$dir/System.map"
	rm -rf "$tmp"
	# Later Debian kernels compress modules; busybox insmod wants plain ones.
	find "$dir/lib/modules/$ver" -name '*.ko.xz' -exec xz -dq {} +
	find "$dir/lib/modules/$ver" -name '*.ko.zst' -exec zstd -dq --rm {} +
	depmod -b "$dir" "$ver" || return 1
	debian_kernel_extract_vmlinux "$dir/vmlinuz" "$dir/vmlinux" || return 1
	echo "$ver" >"$dir/version"
}

debian_kernel_modules() { # dir mod...
	local dir ver m
	dir=$(cd "$1" && pwd) || return 1
	shift
	ver=$(cat "$dir/version") || return 1
	for m in "$@"; do
		modprobe -d "$dir" -S "$ver" --show-depends "$m" || return 1
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

# A busybox initramfs with INIT as /init and MODULES (with their
# dependencies, in load order listed in /modules/order), rebuilt only when
# the kernel, INIT or the module list changed.
debian_build_initramfs() { # kernel-dir out init mod...
	local kdir=$1 out=$2 init=$3 root ko stamp
	shift 3
	stamp="$(cat "$kdir/version") $(md5sum <"$init" | cut -c1-32) $*"
	if [ -s "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	root=$(mktemp -d "$(dirname "$out")/.initrd.XXXXXX") || return 1
	mkdir -p "$root"/{bin,dev,proc,sys,host,modules}
	cp /bin/busybox "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	cp "$init" "$root/init"
	chmod 755 "$root/init"
	: >"$root/modules/order"
	while read -r ko; do
		cp "$ko" "$root/modules/"
		basename "$ko" >>"$root/modules/order"
	done < <(debian_kernel_modules "$kdir" "$@")
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp" || return 1
	mv "$out.tmp" "$out"
	# By rename, as the image: a cache shared by hard links (a second
	# checkout seeded from this one) must never pair a new stamp with the
	# other tree's old image.
	echo "$stamp" >"$out.stamp.tmp" && mv "$out.stamp.tmp" "$out.stamp"
	rm -rf "$root"
}

# One kernel cache for every stage that boots it (Xen's dom0, nested KVM).
DEBIAN_KERNEL_CACHE=${DEBIAN_KERNEL_CACHE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/cache/debian-kernel}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	[ $# -ge 1 ] || { echo "usage: $0 DIR [--modules MOD...]" >&2; exit 2; }
	dir=$1
	shift
	debian_kernel_fetch "$dir"
	if [ "${1:-}" = --modules ]; then
		shift
		debian_kernel_modules "$dir" "$@"
	fi
fi
