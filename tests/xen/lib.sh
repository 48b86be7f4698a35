#!/usr/bin/env bash
# Real Xen under QEMU TCG (what was shown to work: docs/xen.md, section
# "Xen under QEMU TCG"):
# Debian's Xen 4.17 hypervisor and Debian's 6.1 kernel as dom0, booted with
# QEMU's multiboot loader (no GRUB), with a tiny busybox initramfs that loads
# the Xen and 9p modules, mounts the host's root read-only over virtio-9p and
# runs a script from it in a chroot. So host-built binaries (build/hvguard,
# build/tests/xenops) run unchanged against the real Xen drivers.
#
# Source it; then:
#   xen_prepare               fetch Xen + kernel, build the initramfs (cached)
#   xen_boot LOG SCRIPT [ARG...] [-- DOM0_CMDLINE...]
#       boot, run SCRIPT (absolute host path) with ARGs in dom0, power off;
#       the serial log lands in LOG. Pass/fail is read from markers in LOG,
#       never from QEMU's exit code (QEMU exits 0 when dom0 crashes too).

XEN_DIR=${XEN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
XEN_CACHE=${XEN_CACHE:-$XEN_DIR/cache}
# A test boot runs in 3-4 min on an idle 2-core host; TCG slows down with the
# host's load (other QEMUs), so leave room before calling dom0 hung.
XEN_BOOT_TIMEOUT=${XEN_BOOT_TIMEOUT:-480}
# shellcheck source=../lib/debian-kernel.sh
. "$XEN_DIR/../lib/debian-kernel.sh"

# Modules dom0 needs, loaded in this order (dependencies resolved by modprobe
# on the host): the Xen device drivers, then virtio-pci + 9p for the share.
XEN_MODULES=(xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc virtio_pci 9pnet_virtio 9p)

xen_fetch_hypervisor() {
	local dir=$XEN_CACHE/xen tmp deb
	[ -s "$dir/xen" ] && return 0
	mkdir -p "$dir"
	tmp=$(mktemp -d "$dir/.fetch.XXXXXX") || return 1
	(cd "$tmp" && apt-get download -q xen-hypervisor-4.17-amd64 >/dev/null 2>apt.err) || {
		echo "xen: apt-get download xen-hypervisor-4.17-amd64 failed: $(tail -1 "$tmp/apt.err")" >&2
		rm -rf "$tmp"
		return 1
	}
	deb=$(ls "$tmp"/*.deb)
	dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; return 1; }
	# QEMU's -kernel takes the multiboot ELF, not the gzip around it.
	zcat "$tmp"/root/boot/xen-4.17-amd64.gz >"$dir/xen.tmp" && mv "$dir/xen.tmp" "$dir/xen"
	rm -rf "$tmp"
	[ -s "$dir/xen" ]
}

xen_build_initramfs() {
	debian_build_initramfs "$DEBIAN_KERNEL_CACHE" "$XEN_CACHE/initrd.gz" "$XEN_DIR/init" "${XEN_MODULES[@]}"
}

xen_prepare() {
	command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 is not installed" >&2; return 1; }
	[ -x /bin/busybox ] || { echo "busybox-static is not installed" >&2; return 1; }
	mkdir -p "$XEN_CACHE"
	xen_fetch_hypervisor || return 1
	debian_kernel_fetch "$DEBIAN_KERNEL_CACHE" || return 1
	xen_build_initramfs
}

xen_boot() { # log script [arg...] [-- dom0 cmdline...]
	local log=$1 script=$2 extra=() args=() k
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
	[ "${1:-}" = -- ] && { shift; extra=("$@"); }
	# The dom0 command line travels inside -initrd, where commas separate
	# modules: everything that may hold a comma goes after Xen's " -- ",
	# which Xen appends to dom0's command line. Unknown key=value words reach
	# /init as environment variables; the script's args are joined with '+'.
	local joined
	joined=$(printf '%s+' "${args[@]}")
	joined=${joined%+}
	for k in "${extra[@]}"; do
		case "$k" in *' '*) echo "xen_boot: no spaces allowed in '$k'" >&2; return 2 ;; esac
	done
	timeout --foreground -k 5 "$XEN_BOOT_TIMEOUT" \
		qemu-system-x86_64 -accel tcg -machine pc -cpu max,-smap -smp 1 -m 2048 \
		-nographic -no-reboot -serial file:"$log" -monitor none -display none -net none \
		-virtfs local,path=/,mount_tag=host0,security_model=none,readonly=on,multidevs=remap,id=host0 \
		-kernel "$XEN_CACHE/xen/xen" \
		-append "console=com1 com1=115200 dom0_mem=1024M dom0_max_vcpus=1 -- hvg_script=$script hvg_args=$joined ${extra[*]}" \
		-initrd "$DEBIAN_KERNEL_CACHE/vmlinux console=hvc0 earlyprintk=xen rdinit=/init,$XEN_CACHE/initrd.gz" \
		</dev/null >"$log.qemu" 2>&1
}
