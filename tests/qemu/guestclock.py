"""What a real QEMU guest's clocks say, against the host's CLOCK_REALTIME.

The guest is a 64 KiB BIOS (clock-bios.S, its bytes below) that enables
kvmclock and, every 2^24 TSC cycles (a few ms), asks KVM for a clock pairing
(KVM_HC_CLOCK_PAIRING, the hypercall behind the guest's ptp_kvm: the
host's CLOCK_REALTIME and this guest's TSC, both at one host TSC reading)
and publishes it with a copy of its PVTI at guest-physical 0x3000. The host
reads that block while the guest runs (QMP pmemsave). A sample is exact:
no QMP latency enters it. From it:

- TSC: the guest's TSC at a known host realtime;
- kvmclock: what the guest computes from that TSC and its PVTI, at the
  same realtime.

While a guest runs as it should, both stay at a constant distance from
the host's realtime (up to the error of the PVTI's scale against the
host's realtime: a few hundred ns over 10 s, measured on the source by
test_qemu_migration); a step in that distance between two samples is
what the guest lost or gained across whatever lay between them. Like the
busy BIOS (test_qemu_correct.busy_bios) its vCPU always runs: the only
exits are its hypercalls.
"""

import os
import struct
import time

# clock-bios.S, assembled by `make tools`.
CODE_PATH = os.path.join(os.environ.get("HVGUARD_TOOLS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tests"), "clock-bios.code")
BLOCK = 0x3000
SIZE = 0x84


def clock_bios(tmp):
    """Writes the image; returns its path (for -bios)."""
    with open(CODE_PATH, "rb") as f:
        code = f.read()
    if not 0 < len(code) <= 0xf0:
        raise RuntimeError(f"{CODE_PATH}: {len(code)} bytes of code, not 1..240 (make tools)")
    image = bytearray(0x10000)
    image[0xff00:0xff00 + len(code)] = code
    image[0xfff0:0xfff3] = bytes([0xe9, 0x0d, 0xff])  # jmp near 0xff00
    path = os.path.join(tmp, "clock-bios.bin")
    with open(path, "wb") as f:
        f.write(image)
    return path


def scale(delta, mul, shift):
    """pvclock_scale_delta, for a signed delta (cycles -> ns)."""
    sign = -1 if delta < 0 else 1
    d = abs(delta)
    d = d << shift if shift >= 0 else d >> -shift
    return sign * ((d * mul) >> 32)


class Sample:
    def __init__(self, raw):
        (self.end, _, self.sum, self.ret) = struct.unpack_from("<IIIi", raw, 0)
        (self.pvti_version, _, self.tsc_timestamp, self.system_time, self.mul,
         self.shift, self.pvti_flags) = struct.unpack_from("<IIQQIbB", raw, 0x10)
        sec, nsec, self.tsc = struct.unpack_from("<qqQ", raw, 0x40)
        self.realtime = sec * 1_000_000_000 + nsec
        self.begin = struct.unpack_from("<I", raw, 0x80)[0]
        x = self.end
        for (w,) in struct.iter_unpack("<I", raw[0x0c:0x80]):
            x ^= w
        self.whole = (self.end == self.begin and x == self.sum and self.end > 0)

    def valid(self):
        return (self.whole and self.ret == 0 and self.pvti_version % 2 == 0
                and self.pvti_version > 0 and self.mul > 0)

    def kvmclock(self):
        """The guest's kvmclock at its TSC reading, from its PVTI."""
        return self.system_time + scale(self.tsc - self.tsc_timestamp, self.mul, self.shift)

    def __repr__(self):
        return (f"Sample(seq {self.end}/{self.begin}, ret {self.ret}, realtime "
                f"{self.realtime}, tsc {self.tsc}, pvti v{self.pvti_version} "
                f"mul {self.mul} shift {self.shift})")


class NoSample(Exception):
    pass


def sample(vm, tmp, after_ns=0, timeout=10.0):
    """The guest's newest whole sample, taken at a host realtime after
    `after_ns` (a destination's RAM holds the source's last one at first).
    Raises NoSample, with what was read instead, when none comes."""
    path = os.path.join(tmp, f"{vm.name}-{vm.pid}.sample")
    deadline = time.monotonic() + timeout
    last = None
    while True:
        vm.cmd("pmemsave", val=BLOCK, size=SIZE, filename=path)
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) == SIZE:
            last = Sample(raw)
            if last.valid() and last.realtime > after_ns:
                return last
        if time.monotonic() > deadline:
            why = "hypercall failed (the host's clocksource must be the TSC)" \
                if last and last.whole and last.ret else "no valid sample"
            raise NoSample(f"{vm.name}: {why}: last read {last!r}")
        time.sleep(0.02)


def steps(a, b):
    """What the guest's two clocks did from sample a to sample b, each
    against the host's realtime, in ns: (TSC, kvmclock). The TSC's cycles
    are counted at a's PVTI scale, as the guest's kvmclock counts them."""
    rt = b.realtime - a.realtime
    return (scale(b.tsc - a.tsc, a.mul, a.shift) - rt, b.kvmclock() - a.kvmclock() - rt)
