// SPDX-License-Identifier: MIT
/*
 * vCPU and VM state through a snapshot file on a real /dev/kvm: distinctive
 * state is put into one VM, saved, restored into a second VM and read back;
 * a guest stopped right after an IN exit resumes after it in the copy;
 * malformed sections are refused before the target vCPU changes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/kvm/vcpu.h"
#include "../../src/vmm/snapshot/snapfile.h"

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_KERNEL_GS_BASE    0xc0000102
#define APIC_TPR	      0x80

struct fx {
	struct kvm kvm;
	struct gmem mem;
	struct vm vm;
	struct vcpu vcpu;
	struct vcpu_host host;
	struct error err;
};

static char dir[64];
static char path[96];

static void setup(void)
{
	strcpy(dir, "/tmp/bunshin-vcpustate.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

TestSuite(vcpu_state, .init = setup, .fini = teardown);

/* A VM of index + 1 vCPUs, of which only the last one is created. */
static void fx_up_vcpu(struct fx *f, unsigned int index)
{
	struct cpu_topology topo = {.threads = 1, .cores = index + 1, .packages = 1};

	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test("/dev/kvm is not usable here");
	memset(f, 0, sizeof(*f));
	f->vm.fd = -1;
	cr_assert_eq(kvm_open(&f->kvm, "/dev/kvm", &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(gmem_init(&f->mem, 4 * MiB, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(vm_create(&f->vm, &f->kvm, &f->mem, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(vcpu_create(&f->vcpu, &f->vm, &f->host, &topo, index, &f->err), 0, "%s",
		     f->err.msg);
}

static void fx_up(struct fx *f)
{
	fx_up_vcpu(f, 0);
}

static void fx_down(struct fx *f)
{
	vcpu_destroy(&f->vcpu);
	vm_destroy(&f->vm);
	gmem_destroy(&f->mem);
	kvm_close(&f->kvm);
}

static void vioctl(struct fx *f, unsigned long req, void *arg, const char *what)
{
	cr_assert_eq(ioctl(f->vcpu.fd, req, arg), 0, "%s: %s", what, strerror(errno));
}

static void set_msr(struct fx *f, uint32_t index, uint64_t value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = {.hdr.nmsrs = 1, .e = {.index = index, .data = value}};

	cr_assert_eq(ioctl(f->vcpu.fd, KVM_SET_MSRS, &m), 1, "setting MSR %#x", index);
}

static uint64_t get_msr(struct fx *f, uint32_t index)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = {.hdr.nmsrs = 1, .e = {.index = index}};

	cr_assert_eq(ioctl(f->vcpu.fd, KVM_GET_MSRS, &m), 1, "reading MSR %#x", index);
	return m.e.data;
}

/* Saves the vCPU and VM of f into path. */
static void save(struct fx *f)
{
	struct snap_writer w;

	snap_writer_init(&w);
	cr_assert_eq(vcpu_save(&f->vcpu, &w, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(vm_save(&f->vm, &w, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(snap_save(&w, path, &f->err), 0, "%s", f->err.msg);
	snap_writer_free(&w);
}

static void restore(struct fx *f)
{
	struct snap_file file;
	struct snap_section s;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", f->vcpu.index);
	cr_assert_eq(snap_open(&file, path, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(snap_find(&file, name, 1, &s, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(vcpu_restore(&f->vcpu, &s, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(snap_find(&file, "vm", 1, &s, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(vm_restore(&f->vm, &s, &f->err), 0, "%s", f->err.msg);
	snap_close(&file);
}

static const struct kvm_regs sample_regs = {
	.rax = 0x1111111111111111,
	.rbx = 0x2222222222222222,
	.rcx = 0x3333,
	.rdx = 0x4444,
	.rsi = 0x5555,
	.rdi = 0x6666,
	.rsp = 0x7000,
	.rbp = 0x8888,
	.r8 = 0x8,
	.r9 = 0x9,
	.r10 = 0xa,
	.r11 = 0xb,
	.r12 = 0xc,
	.r13 = 0xd,
	.r14 = 0xe,
	.r15 = 0xfedcba9876543210,
	.rip = 0x1234,
	.rflags = 0x246,
};

#define TSC_SAMPLE   (1ULL << 40)
#define TSC_SLACK    600000000000ULL /* a few minutes at any clock rate */
#define MXCSR_SAMPLE 0x7f80	     /* round toward zero, all exceptions masked */

/*
 * MXCSR and XMM3 set as a guest would leave them. Where KVM has XSAVE this
 * goes through the XSAVE area with the SSE bit of XSTATE_BV set: KVM_SET_FPU
 * leaves XSTATE_BV alone, so KVM_GET_XSAVE would report the init state.
 */
/* The vCPU's XSAVE area, or NULL where KVM has no XSAVE; *size set. */
static uint8_t *get_xsave(struct fx *f, int *size)
{
	uint8_t *x;

	if (!kvm_check_extension(&f->kvm, KVM_CAP_XSAVE))
		return NULL;
	*size = ioctl(f->vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (*size < (int)sizeof(struct kvm_xsave))
		*size = sizeof(struct kvm_xsave);
	x = calloc(1, *size);
	cr_assert_not_null(x);
	if (*size > (int)sizeof(struct kvm_xsave))
		vioctl(f, KVM_GET_XSAVE2, x, "KVM_GET_XSAVE2");
	else
		vioctl(f, KVM_GET_XSAVE, x, "KVM_GET_XSAVE");
	return x;
}

/*
 * MXCSR and XMM3 set as a guest would leave them. Where KVM has XSAVE this
 * goes through the XSAVE area with the SSE bit of XSTATE_BV set: KVM_SET_FPU
 * leaves XSTATE_BV alone, so KVM_GET_XSAVE would report the init state.
 */
static void put_sse_state(struct fx *f)
{
	struct kvm_fpu fpu;
	int size;
	uint8_t *x = get_xsave(f, &size);

	if (!x) {
		vioctl(f, KVM_GET_FPU, &fpu, "KVM_GET_FPU");
		fpu.mxcsr = MXCSR_SAMPLE;
		memset(fpu.xmm[3], 0xa5, sizeof(fpu.xmm[3]));
		vioctl(f, KVM_SET_FPU, &fpu, "KVM_SET_FPU");
		return;
	}
	memcpy(x + 24, &(uint32_t){MXCSR_SAMPLE}, 4); /* legacy area: MXCSR */
	memset(x + 160 + 3 * 16, 0xa5, 16);	      /* XMM3 */
	x[512] |= 2; /* XSTATE_BV: SSE state is not in its init state */
	vioctl(f, KVM_SET_XSAVE, x, "KVM_SET_XSAVE");
	free(x);
}

/* Read back through the XSAVE area too: some KVMs report MXCSR 0 in KVM_GET_FPU. */
static void check_sse_state(struct fx *f)
{
	struct kvm_fpu fpu;
	uint32_t mxcsr;
	int size;
	uint8_t *x = get_xsave(f, &size);

	if (!x) {
		vioctl(f, KVM_GET_FPU, &fpu, "KVM_GET_FPU");
		cr_assert_eq(fpu.mxcsr, MXCSR_SAMPLE, "MXCSR %#x", fpu.mxcsr);
		cr_assert_eq(fpu.xmm[3][0], 0xa5);
		cr_assert_eq(fpu.xmm[3][15], 0xa5);
		return;
	}
	memcpy(&mxcsr, x + 24, 4);
	cr_assert_eq(mxcsr, MXCSR_SAMPLE, "MXCSR %#x", mxcsr);
	cr_assert_eq(x[160 + 3 * 16], 0xa5, "XMM3");
	cr_assert_eq(x[160 + 3 * 16 + 15], 0xa5, "XMM3");
	cr_assert(x[512] & 2, "XSTATE_BV lost SSE");
	free(x);
}

static void put_sample_state(struct fx *f)
{
	struct kvm_regs regs = sample_regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_debugregs dregs;
	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_HALTED};

	vioctl(f, KVM_SET_REGS, &regs, "KVM_SET_REGS");
	vioctl(f, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	sregs.cr2 = 0xdead000;
	vioctl(f, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	vioctl(f, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
	lapic.regs[APIC_TPR] = 0x20;
	vioctl(f, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
	vioctl(f, KVM_GET_DEBUGREGS, &dregs, "KVM_GET_DEBUGREGS");
	dregs.db[0] = 0x1000;
	dregs.db[3] = 0x4000;
	dregs.dr7 = 0x441;
	vioctl(f, KVM_SET_DEBUGREGS, &dregs, "KVM_SET_DEBUGREGS");
	put_sse_state(f);
	vioctl(f, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE");
	set_msr(f, MSR_IA32_SYSENTER_CS, 0x10);
	set_msr(f, MSR_IA32_SYSENTER_ESP, 0xffff888000001000);
	set_msr(f, MSR_STAR, 0x0023001000000000);
	set_msr(f, MSR_LSTAR, 0xffffffff81a00000);
	set_msr(f, MSR_KERNEL_GS_BASE, 0xffff888012345000);
	set_msr(f, MSR_IA32_TSC, TSC_SAMPLE);
}

/* Some KVMs (PVM) run the guest on the host's TSC and ignore writes to it. */
static bool tsc_is_settable(struct fx *f)
{
	uint64_t tsc = get_msr(f, MSR_IA32_TSC);

	if (tsc >= TSC_SAMPLE && tsc < TSC_SAMPLE + TSC_SLACK)
		return true;
	fprintf(stderr,
		"this KVM ignores writes to the TSC (%#llx after writing %#llx): "
		"not checking it\n",
		(unsigned long long)tsc, (unsigned long long)TSC_SAMPLE);
	return false;
}

/* XCR0 = x87 | SSE, when KVM has XCRs; returns whether it was set. */
static bool put_xcr0(struct fx *f)
{
	struct kvm_xcrs xcrs = {.nr_xcrs = 1, .xcrs[0] = {.xcr = 0, .value = 0x3}};

	if (!kvm_check_extension(&f->kvm, KVM_CAP_XCRS))
		return false;
	return ioctl(f->vcpu.fd, KVM_SET_XCRS, &xcrs) == 0;
}

static void check_sample_state(struct fx *f, bool xcr0, bool check_tsc)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_debugregs dregs;
	struct kvm_mp_state mp;
	uint64_t tsc;

	vioctl(f, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	cr_assert_eq(memcmp(&regs, &sample_regs, sizeof(regs)), 0, "registers differ");
	vioctl(f, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	cr_assert_eq(sregs.cr2, 0xdead000);
	vioctl(f, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
	cr_assert_eq((uint8_t)lapic.regs[APIC_TPR], 0x20, "TPR");
	vioctl(f, KVM_GET_DEBUGREGS, &dregs, "KVM_GET_DEBUGREGS");
	cr_assert_eq(dregs.db[0], 0x1000);
	cr_assert_eq(dregs.db[3], 0x4000);
	cr_assert_eq(dregs.dr7, 0x441);
	check_sse_state(f);
	vioctl(f, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
	cr_assert_eq(mp.mp_state, KVM_MP_STATE_HALTED);
	cr_assert_eq(get_msr(f, MSR_IA32_SYSENTER_CS), 0x10);
	cr_assert_eq(get_msr(f, MSR_IA32_SYSENTER_ESP), 0xffff888000001000);
	cr_assert_eq(get_msr(f, MSR_STAR), 0x0023001000000000);
	cr_assert_eq(get_msr(f, MSR_LSTAR), 0xffffffff81a00000);
	cr_assert_eq(get_msr(f, MSR_KERNEL_GS_BASE), 0xffff888012345000);
	/* The TSC goes on from the saved value, not from the new VM's zero. */
	tsc = get_msr(f, MSR_IA32_TSC);
	if (check_tsc) {
		cr_assert_geq(tsc, TSC_SAMPLE, "TSC %#lx went back", (unsigned long)tsc);
		cr_assert_lt(tsc, TSC_SAMPLE + TSC_SLACK, "TSC %#lx jumped", (unsigned long)tsc);
	}
	if (xcr0) {
		struct kvm_xcrs xcrs;

		vioctl(f, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
		cr_assert_eq(xcrs.xcrs[0].value, 0x3, "XCR0");
	}
}

Test(vcpu_state, registers_fpu_msrs_and_lapic_survive)
{
	struct fx a, b;
	bool xcr0, tsc;

	fx_up(&a);
	put_sample_state(&a);
	xcr0 = put_xcr0(&a);
	tsc = tsc_is_settable(&a);
	save(&a);
	fx_up(&b);
	restore(&b);
	check_sample_state(&b, xcr0, tsc);
	fx_down(&b);
	fx_down(&a);
}

#define MSR_IA32_TSC_DEADLINE 0x6e0
#define APIC_LVTT	      0x320
#define APIC_SPIV	      0xf0
#define LVTT_TSC_DEADLINE     (2u << 17)

static void put_lapic_reg(struct kvm_lapic_state *l, int reg, uint32_t v)
{
	memcpy(l->regs + reg, &v, 4);
}

/*
 * A timer armed in TSC-deadline mode stays armed in the copy. KVM drops a
 * deadline written while the LAPIC timer is in another mode, so this fails
 * if the LAPIC is restored after the MSRs.
 */
Test(vcpu_state, an_armed_tsc_deadline_survives)
{
	struct fx a, b;
	struct kvm_lapic_state lapic;
	uint64_t deadline;

	fx_up(&a);
	vioctl(&a, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
	put_lapic_reg(&lapic, APIC_SPIV, 0x1ff); /* software-enabled */
	put_lapic_reg(&lapic, APIC_LVTT, LVTT_TSC_DEADLINE | 0xec);
	vioctl(&a, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
	/* Far enough ahead (an hour at 100 GHz) not to fire during the test. */
	deadline = get_msr(&a, MSR_IA32_TSC) + 360000000000000ULL;
	set_msr(&a, MSR_IA32_TSC_DEADLINE, deadline);
	if (get_msr(&a, MSR_IA32_TSC_DEADLINE) != deadline) {
		fx_down(&a);
		cr_skip_test("this guest's LAPIC has no TSC-deadline mode");
	}
	save(&a);
	fx_up(&b);
	restore(&b);
	cr_assert_eq(get_msr(&b, MSR_IA32_TSC_DEADLINE), deadline, "deadline %#llx lost",
		     (unsigned long long)deadline);
	fx_down(&b);
	fx_down(&a);
}

/* An AP that never ran (waiting for INIT/SIPI) is saved as "vcpu1" and stays waiting. */
Test(vcpu_state, a_waiting_ap_round_trips_under_its_index)
{
	struct fx a, b;
	struct kvm_mp_state mp_a, mp_b;
	struct kvm_regs regs = sample_regs, back;

	fx_up_vcpu(&a, 1);
	vioctl(&a, KVM_SET_REGS, &regs, "KVM_SET_REGS");
	vioctl(&a, KVM_GET_MP_STATE, &mp_a, "KVM_GET_MP_STATE");
	save(&a);
	fx_up_vcpu(&b, 1);
	restore(&b);
	vioctl(&b, KVM_GET_MP_STATE, &mp_b, "KVM_GET_MP_STATE");
	cr_assert_eq(mp_b.mp_state, mp_a.mp_state, "MP state %u, saved %u", mp_b.mp_state,
		     mp_a.mp_state);
	vioctl(&b, KVM_GET_REGS, &back, "KVM_GET_REGS");
	cr_assert_eq(back.r15, sample_regs.r15);
	fx_down(&b);
	fx_down(&a);
}

static void vm_ioctl_ok(struct fx *f, unsigned long req, void *arg, const char *what)
{
	cr_assert_eq(ioctl(f->vm.fd, req, arg), 0, "%s: %s", what, strerror(errno));
}

Test(vcpu_state, irqchips_pit_and_clock_survive)
{
	struct fx a, b;
	struct kvm_irqchip pic = {.chip_id = KVM_IRQCHIP_PIC_MASTER};
	struct kvm_irqchip ioapic = {.chip_id = KVM_IRQCHIP_IOAPIC};
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock = {.clock = 5000000000000ULL}; /* 5000 s */

	fx_up(&a);
	vm_ioctl_ok(&a, KVM_GET_IRQCHIP, &pic, "KVM_GET_IRQCHIP");
	pic.chip.pic.imr = 0xfa;
	vm_ioctl_ok(&a, KVM_SET_IRQCHIP, &pic, "KVM_SET_IRQCHIP");
	vm_ioctl_ok(&a, KVM_GET_IRQCHIP, &ioapic, "KVM_GET_IRQCHIP");
	ioapic.chip.ioapic.redirtbl[4].bits = 0x10034; /* masked, vector 0x34 */
	vm_ioctl_ok(&a, KVM_SET_IRQCHIP, &ioapic, "KVM_SET_IRQCHIP");
	vm_ioctl_ok(&a, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
	pit.channels[2].count = 0x1234;
	pit.channels[2].mode = 3;
	vm_ioctl_ok(&a, KVM_SET_PIT2, &pit, "KVM_SET_PIT2");
	vm_ioctl_ok(&a, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
	save(&a);

	fx_up(&b);
	restore(&b);
	memset(&pic.chip, 0, sizeof(pic.chip));
	vm_ioctl_ok(&b, KVM_GET_IRQCHIP, &pic, "KVM_GET_IRQCHIP");
	cr_assert_eq(pic.chip.pic.imr, 0xfa, "master PIC mask");
	memset(&ioapic.chip, 0, sizeof(ioapic.chip));
	vm_ioctl_ok(&b, KVM_GET_IRQCHIP, &ioapic, "KVM_GET_IRQCHIP");
	cr_assert_eq(ioapic.chip.ioapic.redirtbl[4].bits, 0x10034, "IOAPIC pin 4");
	memset(&pit, 0, sizeof(pit));
	vm_ioctl_ok(&b, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
	cr_assert_eq(pit.channels[2].count, 0x1234, "PIT channel 2 count");
	cr_assert_eq(pit.channels[2].mode, 3, "PIT channel 2 mode");
	vm_ioctl_ok(&b, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK");
	cr_assert_geq(clock.clock, 5000000000000ULL, "kvmclock went back");
	cr_assert_lt(clock.clock, 5060000000000ULL, "kvmclock jumped");
	fx_down(&b);
	fx_down(&a);
}

/* Real mode at 0x1000: mov dx,0x1234; in al,dx; mov dx,0x1235; out dx,al; hlt */
static const uint8_t io_guest[] = {0xba, 0x34, 0x12, 0xec, 0xba, 0x35, 0x12, 0xee, 0xf4};

static void put_real_mode_guest(struct fx *f)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 0x2};

	cr_assert_eq(gmem_write(&f->mem, 0x1000, io_guest, sizeof(io_guest)), 0);
	vioctl(f, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	vioctl(f, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	vioctl(f, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

/* Runs until the next exit, which must be port I/O on port in direction dir. */
static uint8_t *run_to_io(struct fx *f, uint16_t port, uint8_t direction)
{
	struct kvm_run *run = f->vcpu.run;

	cr_assert_eq(ioctl(f->vcpu.fd, KVM_RUN, 0), 0, "KVM_RUN: %s", strerror(errno));
	cr_assert_eq(run->exit_reason, KVM_EXIT_IO, "exit reason %u", run->exit_reason);
	cr_assert_eq(run->io.port, port);
	cr_assert_eq(run->io.direction, direction);
	return (uint8_t *)run + run->io.data_offset;
}

/*
 * The IN's data reaches AL only at the next KVM_RUN. A snapshot taken at
 * the exit must still carry it, and the copy must go on after the IN.
 */
Test(vcpu_state, snapshot_at_an_in_exit_carries_its_data)
{
	struct fx a, b;
	struct kvm_regs regs;
	uint8_t *data;

	fx_up(&a);
	put_real_mode_guest(&a);
	data = run_to_io(&a, 0x1234, KVM_EXIT_IO_IN);
	*data = 0x5a;
	save(&a);

	fx_up(&b);
	cr_assert_eq(gmem_write(&b.mem, 0x1000, io_guest, sizeof(io_guest)), 0);
	restore(&b);
	vioctl(&b, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	cr_assert_eq(regs.rax & 0xff, 0x5a, "AL is %#llx", regs.rax & 0xff);
	cr_assert_eq(regs.rip, 0x1004, "RIP is %#llx", regs.rip);
	data = run_to_io(&b, 0x1235, KVM_EXIT_IO_OUT);
	cr_assert_eq(*data, 0x5a, "the copy wrote %#x", *data);
	fx_down(&b);
	fx_down(&a);
}

/* ---- malformed state ---- */

struct payload {
	uint8_t *p;
	size_t len;
};

/* The payload of section name, as a saved file holds it. */
static struct payload read_payload(const char *name)
{
	struct snap_file file;
	struct snap_section s;
	struct error err = {0};
	struct payload out;

	cr_assert_eq(snap_open(&file, path, &err), 0, "%s", err.msg);
	cr_assert_eq(snap_find(&file, name, 1, &s, &err), 0, "%s", err.msg);
	out.len = s.len;
	out.p = malloc(s.len + 64);
	cr_assert_not_null(out.p);
	memcpy(out.p, s.p, s.len);
	snap_close(&file);
	return out;
}

static void write_payload(const char *name, uint32_t version, const uint8_t *p, size_t len)
{
	struct snap_writer w;
	struct error err = {0};

	snap_writer_init(&w);
	snap_begin(&w, name, version);
	snap_put_bytes(&w, p, len);
	snap_end(&w);
	cr_assert_eq(snap_save(&w, path, &err), 0, "%s", err.msg);
	snap_writer_free(&w);
}

static uint32_t get32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

/* Offsets into a "vcpuN" payload, walked as the layout defines it. */
struct vcpu_offsets {
	size_t apic_id, xsave_len, nmsrs;
	uint32_t fpu_kind;
};

static struct vcpu_offsets vcpu_offsets(const struct payload *pl)
{
	struct vcpu_offsets o = {.apic_id = 0};
	size_t off = 8;

	off += 4 + sizeof(struct kvm_regs);
	off += 4 + sizeof(struct kvm_sregs);
	o.fpu_kind = get32(pl->p + off);
	off += 4;
	o.xsave_len = off;
	off += 4 + get32(pl->p + off); /* XSAVE or FPU */
	off += 4 + get32(pl->p + off); /* XCRs */
	off += 4 + sizeof(struct kvm_lapic_state);
	off += 4 + sizeof(struct kvm_vcpu_events);
	off += 4 + sizeof(struct kvm_debugregs);
	off += 4; /* MP state */
	o.nmsrs = off;
	cr_assert_eq(pl->len, off + 4 + 12 * get32(pl->p + off), "layout walk");
	return o;
}

/* Restores section name from path into f and expects ret with msg in the error. */
static void restore_fails(struct fx *f, const char *name, int ret, const char *msg)
{
	struct snap_file file;
	struct snap_section s;
	int r;

	cr_assert_eq(snap_open(&file, path, &f->err), 0, "%s", f->err.msg);
	cr_assert_eq(snap_find(&file, name, 9, &s, &f->err), 0, "%s", f->err.msg);
	if (!strcmp(name, "vm"))
		r = vm_restore(&f->vm, &s, &f->err);
	else
		r = vcpu_restore(&f->vcpu, &s, &f->err);
	cr_assert_eq(r, ret, "got %d (%s)", r, f->err.msg);
	cr_assert_not_null(strstr(f->err.msg, msg), "message '%s' lacks '%s'", f->err.msg, msg);
	snap_close(&file);
}

/* A refused restore leaves the vCPU as it was. */
static void check_untouched(struct fx *f)
{
	struct kvm_regs regs;

	vioctl(f, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	cr_assert_neq(regs.rax, sample_regs.rax, "a refused restore changed RAX");
}

Test(vcpu_state, malformed_vcpu_sections_are_refused)
{
	struct fx a, b;
	struct payload pl, bad;
	struct vcpu_offsets o;

	fx_up(&a);
	put_sample_state(&a);
	save(&a);
	pl = read_payload("vcpu0");
	o = vcpu_offsets(&pl);
	bad.p = malloc(pl.len + 64);
	fx_up(&b);

	write_payload("vcpu0", 1, pl.p, pl.len - 5);
	restore_fails(&b, "vcpu0", -EBADMSG, "vcpu0");
	write_payload("vcpu0", 1, pl.p, 6);
	restore_fails(&b, "vcpu0", -EBADMSG, "vcpu0: the state is truncated");
	memcpy(bad.p, pl.p, pl.len);
	memset(bad.p + pl.len, 0, 4);
	write_payload("vcpu0", 1, bad.p, pl.len + 4);
	restore_fails(&b, "vcpu0", -EBADMSG, "4 unexpected bytes");
	write_payload("vcpu0", 2, pl.p, pl.len);
	restore_fails(&b, "vcpu0", -EPROTO, "version 2");

	memcpy(bad.p, pl.p, pl.len);
	put32(bad.p + o.apic_id, 7);
	write_payload("vcpu0", 1, bad.p, pl.len);
	restore_fails(&b, "vcpu0", -EINVAL, "APIC ID 7");

	memcpy(bad.p, pl.p, pl.len);
	put32(bad.p + o.nmsrs, 0x40000000);
	write_payload("vcpu0", 1, bad.p, pl.len);
	restore_fails(&b, "vcpu0", -EBADMSG, "claims 1073741824 MSRs");

	memcpy(bad.p, pl.p, pl.len);
	put32(bad.p + 8, sizeof(struct kvm_regs) - 8);
	write_payload("vcpu0", 1, bad.p, pl.len);
	restore_fails(&b, "vcpu0", -EBADMSG, "registers of");

	if (o.fpu_kind == 1) {
		char want[96];
		uint32_t host = get32(pl.p + o.xsave_len);

		memcpy(bad.p, pl.p, pl.len);
		put32(bad.p + o.xsave_len, host + 64);
		memset(bad.p + pl.len, 0, 64);
		write_payload("vcpu0", 1, bad.p, pl.len + 64);
		snprintf(want, sizeof(want), "vcpu0: XSAVE area of %u bytes, this host uses %u",
			 host + 64, host);
		restore_fails(&b, "vcpu0", -EBADMSG, want);
	}
	check_untouched(&b);
	free(bad.p);
	free(pl.p);
	fx_down(&b);
	fx_down(&a);
}

Test(vcpu_state, a_refused_msr_is_named)
{
	struct fx a, b;
	struct payload pl;
	struct vcpu_offsets o;

	fx_up(&a);
	save(&a);
	pl = read_payload("vcpu0");
	o = vcpu_offsets(&pl);
	cr_assert_gt(get32(pl.p + o.nmsrs), 0, "no MSRs saved");
	/* The first MSR becomes one no x86 CPU has. */
	put32(pl.p + o.nmsrs + 4, 0x5a5a5a5a);
	write_payload("vcpu0", 1, pl.p, pl.len);
	fx_up(&b);
	restore_fails(&b, "vcpu0", -EINVAL, "KVM refused MSR 0x5a5a5a5a");
	free(pl.p);
	fx_down(&b);
	fx_down(&a);
}

Test(vcpu_state, malformed_vm_sections_are_refused)
{
	struct fx a, b;
	struct payload pl;
	size_t ioapic = 2 * (4 + sizeof(struct kvm_pic_state)) + 4;

	fx_up(&a);
	save(&a);
	pl = read_payload("vm");
	fx_up(&b);
	write_payload("vm", 1, pl.p, pl.len - 1);
	restore_fails(&b, "vm", -EBADMSG, "too short");
	write_payload("vm", 1, pl.p, 20);
	restore_fails(&b, "vm", -EBADMSG, "vm: the state ends before its slave PIC");
	/* The IOAPIC state starts with its base address. */
	pl.p[ioapic + 2] ^= 0x10;
	write_payload("vm", 1, pl.p, pl.len);
	restore_fails(&b, "vm", -EINVAL, "IOAPIC at");
	free(pl.p);
	fx_down(&b);
	fx_down(&a);
}
