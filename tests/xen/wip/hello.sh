#!/bin/bash
echo "HVG hello args=$* uname=$(uname -r)"
ls -la /dev/xen /proc/xen
grep -E ' (privcmd_ioctl|gntdev_ioctl|gntalloc_ioctl|xen_privcmd_fops|gntdev_fops|gntalloc_fops)' /proc/kallsyms
cat /sys/class/misc/{privcmd,gntdev,gntalloc}/dev 2>&1
ls /sys/kernel/btf | head
cat /proc/cmdline
echo "HVG hello done"
