/*
 * The clock-reporting BIOS of the qemu stage's migration tests: `make
 * tools` assembles its code (build/tests/clock-bios.code), and
 * tests/qemu/guestclock.py puts it below the reset vector of a 64 KiB image.
 *
 * Real mode from the reset vector. Enables kvmclock (PVTI at 0x1000), then
 * forever, every 2^24 TSC cycles (a few ms): asks KVM for a clock pairing
 * (KVM_HC_CLOCK_PAIRING, what ptp_kvm uses: the host's CLOCK_REALTIME and
 * this guest's TSC at one host TSC reading), copies the PVTI beside it and
 * publishes both as one sample at 0x3000, for the host to read (pmemsave):
 *   0x00 end seq   0x08 checksum   0x0c hypercall result   0x10 PVTI (32 B)
 *   0x40 struct kvm_clock_pairing (64 B)   0x80 begin seq
 * begin is written first, end last; checksum = seq ^ the dwords 0x0c-0x7f.
 * A reader that copies the block while it is rewritten sees begin != end or
 * a wrong checksum. No exit but the hypercall itself: the vCPU always runs.
 * The hypercall instruction is the vendor's, as Linux picks it: VMMCALL on
 * AMD and Hygon (CPUID 0's vendor), VMCALL elsewhere (KVM's emulation of
 * the other one on #UD needs protected mode; this is real mode). Only the
 * AMD path has run here (nested kvm_amd). KVM answers the pairing only
 * while the host's clocksource is the TSC: else the result is
 * -KVM_EOPNOTSUPP (-95), which the reader reports.
 */
	.code16
	.text
start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	%ax, %es
	xor	%eax, %eax		/* the vendor: 0x30f0 = 1 for VMCALL */
	cpuid
	movb	$0, 0x30f0
	cmp	$0x68747541, %ebx	/* "Auth"enticAMD */
	je	1f
	cmp	$0x6f677948, %ebx	/* "Hygo"nGenuine */
	je	1f
	movb	$1, 0x30f0
1:
	mov	$0x4b564d01, %ecx	/* MSR_KVM_SYSTEM_TIME_NEW */
	mov	$0x1001, %eax		/* PVTI at 0x1000, enabled */
	xor	%edx, %edx
	wrmsr
	xor	%ebp, %ebp		/* the sample's sequence number */
next:
	inc	%ebp
	mov	%ebp, 0x3080		/* begin: sample ebp under way */
	mov	$9, %eax		/* KVM_HC_CLOCK_PAIRING */
	mov	$0x3040, %ebx		/* struct kvm_clock_pairing here */
	xor	%ecx, %ecx		/* KVM_CLOCK_PAIRING_WALLCLOCK */
	cmpb	$0, 0x30f0
	jne	2f
	vmmcall
	jmp	3f
2:
	vmcall
3:
	mov	%eax, 0x300c		/* its result: 0, or -KVM_Exxx */
	mov	$0x1000, %si		/* the PVTI as it is now, 32 bytes */
	mov	$0x3010, %di
	mov	$8, %cx
	cld
	rep movsl
	mov	%ebp, %eax		/* checksum: seq ^ the dwords 0x300c..0x307f */
	mov	$0x300c, %si
	mov	$29, %cx
sum:
	xor	(%si), %eax
	add	$4, %si
	loop	sum
	mov	%eax, 0x3008
	mov	%ebp, 0x3000		/* end: sample ebp complete */
	rdtsc				/* the next in 2^24 TSC cycles */
	mov	%eax, %esi
wait:
	rdtsc
	sub	%esi, %eax
	cmp	$0x1000000, %eax
	jb	wait
	jmp	next
