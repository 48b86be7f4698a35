/*
 * The clock-reporting BIOS of the qemu stage's migration tests
 * (tests/e2e/guestclock.py embeds its bytes: after a change, regenerate them
 *   as --32 -o clock.o clock-bios.S && objcopy -O binary -j .text clock.o clock.bin
 * and paste `xxd -p clock.bin` into CODE there).
 *
 * Real mode from the reset vector. Enables kvmclock (PVTI at 0x1000), then
 * forever, every 2^20 TSC cycles: asks KVM for a clock pairing
 * (KVM_HC_CLOCK_PAIRING, what ptp_kvm uses: the host's CLOCK_REALTIME and
 * this guest's TSC at one host TSC reading), copies the PVTI beside it and
 * publishes both as one sample at 0x3000, for the host to read (pmemsave):
 *   0x00 end seq   0x08 checksum   0x0c hypercall result   0x10 PVTI (32 B)
 *   0x40 struct kvm_clock_pairing (64 B)   0x80 begin seq
 * begin is written first, end last; checksum = seq ^ the dwords 0x0c-0x7f.
 * A reader that copies the block while it is rewritten sees begin != end or
 * a wrong checksum. No exit but the hypercall itself: the vCPU always runs.
 */
	.code16
	.text
start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	%ax, %es
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
	vmmcall
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
	rdtsc				/* the next in 2^20 TSC cycles */
	mov	%eax, %esi
wait:
	rdtsc
	sub	%esi, %eax
	cmp	$0x100000, %eax
	jb	wait
	jmp	next
