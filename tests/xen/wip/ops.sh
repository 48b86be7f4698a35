#!/bin/bash
X=/work/main/build/tests/xenops
ls /sys/class/misc/ | tr '\n' ' '; echo
$X grant-cycle
$X grant-leak
$X gnttab-frame
F=$($X gnttab-frame | sed -n 's/.*frame=\([0-9]*\).*/\1/p')
$X mmapbatch $F 2
$X hypercall
$X resource 0
$X resource 1
$X hostile
$X bench-grant 200
$X bench-privcmd 2000
$X bench-hypercall 2000
echo "HVG ops done"
