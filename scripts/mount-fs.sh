#!/usr/bin/env bash
# Mounts the pseudo file systems hvguard needs when they are not mounted yet:
# tracefs (tracepoints), bpffs (pinned state that survives daemon restarts),
# debugfs (KVM's per-vCPU files read by `hvguard audit`).
set -eu
mnt() { # type dir [mount options...]
	mountpoint -q "$2" && return 0
	mkdir -p "$2"
	mount -t "$1" "${@:3}" "$1" "$2" || { echo "hvguard: cannot mount $1 on $2" >&2; return 1; }
}
mnt tracefs /sys/kernel/tracing
# Root's alone, as hvguard mounts it (README "Who may touch the pinned state").
mnt bpf /sys/fs/bpf -o mode=0700
mnt debugfs /sys/kernel/debug
