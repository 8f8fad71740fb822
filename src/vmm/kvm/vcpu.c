// SPDX-License-Identifier: MIT
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "msr.h"
#include "vcpu.h"
#include "../layout.h"
#include "../sandbox/seccomp.h"
#include "../../common/log.h"

/* Real-time signal so it never collides with anything a library uses. */
#define VCPU_KICK_SIGNAL (SIGRTMIN + 1)

#define CR0_PE	 (1ULL << 0)
#define CR0_ET	 (1ULL << 4)
#define CR0_NE	 (1ULL << 5)
#define CR0_PG	 (1ULL << 31)
#define CR4_PAE	 (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI	 0x4

static void vcpu_kick_handler(int sig)
{
	(void)sig;
}

int vcpu_signal_init(void)
{
	struct sigaction sa = {.sa_handler = vcpu_kick_handler};

	/* No SA_RESTART: KVM_RUN must come back with EINTR. */
	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

static void vcpu_set_lvt_mode(uint8_t *regs, int reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, regs + reg, 4);
	v = (v & ~0x700u) | (mode << 8);
	memcpy(regs + reg, &v, 4);
}

/* Virtual-wire mode, as PC firmware leaves the local APIC: LINT0 ExtINT, LINT1 NMI. */
static int vcpu_init_lapic(struct vcpu *v)
{
	struct kvm_lapic_state lapic;

	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	vcpu_set_lvt_mode((uint8_t *)lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
	vcpu_set_lvt_mode((uint8_t *)lapic.regs, APIC_LVT1, APIC_MODE_NMI);
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	return 0;
}

static int vcpu_init_fpu(struct vcpu *v)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};

	return ioctl(v->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

static int vcpu_setup_cpu(struct vcpu *v, const struct cpu_topology *topo, struct error *err)
{
	struct kvm_cpuid2 *cpuid = cpuid_for_vcpu(v->vm->kvm, topo, v->index);
	int ret;

	if (!cpuid)
		return error_set(err, ENOMEM, "out of memory");
	ret = ioctl(v->fd, KVM_SET_CPUID2, cpuid);
	free(cpuid);
	if (ret < 0)
		return error_set(err, errno, "vCPU %u: KVM_SET_CPUID2: %s", v->index,
				 strerror(errno));
	ret = msr_init_boot(v->vm->kvm, v->fd);
	if (ret)
		return error_set(err, -ret, "vCPU %u: KVM_SET_MSRS refused a boot MSR", v->index);
	ret = vcpu_init_lapic(v);
	if (ret)
		return error_set(err, -ret, "vCPU %u: setting up the local APIC: %s", v->index,
				 strerror(-ret));
	ret = vcpu_init_fpu(v);
	if (ret)
		return error_set(err, -ret, "vCPU %u: KVM_SET_FPU: %s", v->index, strerror(-ret));
	return 0;
}

int vcpu_create(struct vcpu *v, struct vm *vm, const struct vcpu_host *host,
		const struct cpu_topology *topo, unsigned int index, struct error *err)
{
	void *run;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->host = host;
	v->index = index;
	v->apic_id = topo_apic_id(topo, index);
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)v->apic_id);
	if (v->fd < 0)
		return error_set(err, errno, "KVM_CREATE_VCPU %u: %s", index, strerror(errno));
	run = mmap(NULL, vm->kvm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED) {
		int e = errno;
		close(v->fd);
		v->fd = -1;
		return error_set(err, e, "mapping vCPU %u run area: %s", index, strerror(e));
	}
	v->run = run;
	return vcpu_setup_cpu(v, topo, err);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->vm->kvm->vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

static void vcpu_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64;
	s->db = !code64;
}

static void vcpu_flat_segments(struct kvm_sregs *sregs, bool long_mode)
{
	vcpu_segment(&sregs->cs, LAYOUT_BOOT_CS, 0xb, long_mode);
	vcpu_segment(&sregs->ds, LAYOUT_BOOT_DS, 0x3, false);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	memset(&sregs->tr, 0, sizeof(sregs->tr));
	sregs->tr.selector = LAYOUT_BOOT_TSS;
	sregs->tr.type = 0xb; /* busy 32-bit TSS: VMX refuses entry without a usable TR */
	sregs->tr.present = 1;
	sregs->tr.limit = 0x67;
	sregs->gdt.base = LAYOUT_GDT_GPA;
	sregs->gdt.limit = 5 * 8 - 1;
}

/*
 * Linux 64-bit entry (boot.rst, "64-bit Boot Protocol"): long mode with
 * paging on and the identity map the loader wrote, __BOOT_CS/__BOOT_DS,
 * interrupts off, RSI = zero page.
 * PVH entry: 32-bit protected mode, paging off, flat segments, EBX =
 * hvm_start_info.
 */
int vcpu_set_boot_state(struct vcpu *v, const struct boot_entry *entry, struct error *err)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {0};
	bool lm = entry->protocol == BOOT_LINUX64;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return error_set(err, errno, "KVM_GET_SREGS: %s", strerror(errno));
	vcpu_flat_segments(&sregs, lm);
	sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | (lm ? CR0_PG : 0);
	sregs.cr4 = lm ? CR4_PAE : 0;
	sregs.cr3 = lm ? LAYOUT_PML4_GPA : 0;
	sregs.efer = lm ? (EFER_LME | EFER_LMA) : 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return error_set(err, errno, "KVM_SET_SREGS: %s", strerror(errno));

	regs.rflags = 0x2;
	regs.rip = entry->rip;
	regs.rsp = LAYOUT_BOOT_STACK_GPA;
	if (lm)
		regs.rsi = entry->info_gpa;
	else
		regs.rbx = entry->info_gpa;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return error_set(err, errno, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	/* String I/O (rep ins/outs) arrives as count back-to-back elements. */
	for (uint32_t i = 0; i < run->io.count; i++) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(v->host->pio, run->io.port, data, run->io.size);
		else
			bus_read(v->host->pio, run->io.port, data, run->io.size);
		data += run->io.size;
	}
}

static void vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	if (run->mmio.is_write)
		bus_write(v->host->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
	else
		bus_read(v->host->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
}

static void vcpu_report(struct vcpu *v, enum vcpu_event ev)
{
	atomic_store(&v->stop, true);
	v->host->event(v->host->ctx, v->index, ev);
}

static void vcpu_dump(struct vcpu *v, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	log_error("vCPU %u: %s", v->index, why);
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return;
	log_error("vCPU %u: rip=%#llx rsp=%#llx rflags=%#llx cr0=%#llx cr3=%#llx cr4=%#llx "
		  "efer=%#llx cs=%#x",
		  v->index, r.rip, r.rsp, r.rflags, s.cr0, s.cr3, s.cr4, s.efer, s.cs.selector);
}

static void vcpu_handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vcpu_report(v, VCPU_EVENT_POWEROFF);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vcpu_report(v, VCPU_EVENT_RESET);
		break;
	default:
		vcpu_dump(v, "unexpected system event (crash)");
		vcpu_report(v, VCPU_EVENT_ERROR);
		break;
	}
}

static void vcpu_handle_exit(struct vcpu *v)
{
	uint32_t reason = v->run->exit_reason;
	char why[96];

	if (reason < VCPU_EXIT_REASONS)
		v->exits[reason]++;
	switch (reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(v);
		break;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(v);
		break;
	case KVM_EXIT_INTR:
		break;
	case KVM_EXIT_SHUTDOWN:
		/* A triple fault: on a PC the chipset turns it into a reset. */
		vcpu_report(v, VCPU_EVENT_RESET);
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		vcpu_handle_system_event(v);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "KVM entry failed, hardware reason %#llx",
			 (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
		vcpu_dump(v, why);
		vcpu_report(v, VCPU_EVENT_ERROR);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(why, sizeof(why), "KVM internal error, suberror %u",
			 v->run->internal.suberror);
		vcpu_dump(v, why);
		vcpu_report(v, VCPU_EVENT_ERROR);
		break;
	default:
		snprintf(why, sizeof(why), "unhandled KVM exit reason %u", reason);
		vcpu_dump(v, why);
		vcpu_report(v, VCPU_EVENT_ERROR);
		break;
	}
}

/*
 * KVM finishes an exit (puts the data of an IN or MMIO read into the
 * guest's registers, steps past the instruction) only at the next KVM_RUN,
 * and keeps that half-done operation where no ioctl can read it. A KVM_RUN
 * with immediate_exit set finishes it and returns EINTR without running
 * guest code; an operation that needs one more exit (string I/O crossing a
 * page) returns that exit instead, which is handled here like any other.
 */
int vcpu_finish_pending_io(struct vcpu *v)
{
	uint8_t saved = v->run->immediate_exit;
	int ret = -EBUSY;

	v->run->immediate_exit = 1;
	for (int i = 0; i < 64; i++) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			ret = errno == EINTR ? 0 : -errno;
			break;
		}
		if (!v->host ||
		    (v->run->exit_reason != KVM_EXIT_IO && v->run->exit_reason != KVM_EXIT_MMIO)) {
			ret = -EIO;
			break;
		}
		vcpu_handle_exit(v);
	}
	v->run->immediate_exit = saved;
	return ret;
}

/* ---- pausing ---- */

void vcpu_gate_init(struct vcpu_gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
}

void vcpu_gate_destroy(struct vcpu_gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

/*
 * Before each KVM_RUN. immediate_exit is cleared only here, under the lock
 * and only with the gate open, while closing sets it under the same lock:
 * so a close can never be lost between this check and the next KVM_RUN,
 * and a vCPU let through never spins on a stale immediate_exit. A stop
 * (vcpu_kick) keeps it set.
 */
static void vcpu_gate_pass(struct vcpu *v)
{
	struct vcpu_gate *g = v->host->gate;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	if (g->closed && !atomic_load(&v->stop)) {
		g->parked++;
		pthread_cond_broadcast(&g->cond);
		while (g->closed && !atomic_load(&v->stop))
			pthread_cond_wait(&g->cond, &g->lock);
		g->parked--;
	}
	if (!g->closed && !atomic_load(&v->stop))
		v->run->immediate_exit = 0;
	pthread_mutex_unlock(&g->lock);
}

static void vcpu_gate_enter(struct vcpu *v, int delta)
{
	struct vcpu_gate *g = v->host->gate;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->running += delta;
	pthread_cond_broadcast(&g->cond); /* a closer may be waiting for one that left */
	pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_close(struct vcpu_gate *g, struct vcpu *vcpus, unsigned int n)
{
	pthread_mutex_lock(&g->lock);
	g->closed = true;
	for (unsigned int i = 0; i < n; i++)
		vcpus[i].run->immediate_exit = 1;
	pthread_mutex_unlock(&g->lock);
	/* Out of KVM_RUN now, rather than at the next exit (a halted vCPU may never have one). */
	for (unsigned int i = 0; i < n; i++)
		if (vcpus[i].started)
			pthread_kill(vcpus[i].thread, VCPU_KICK_SIGNAL);
	pthread_mutex_lock(&g->lock);
	while (g->parked < g->running)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_open(struct vcpu_gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->closed = false;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;

	/* Only the kick signal may interrupt this thread; the main thread handles the rest. */
	sigfillset(&set);
	sigdelset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	/* From here on, only what running the guest and its exits need. */
	sandbox_seccomp_thread(SANDBOX_THREAD_VCPU);

	for (;;) {
		vcpu_gate_pass(v);
		if (atomic_load(&v->stop))
			break;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			log_error("vCPU %u: KVM_RUN: %s", v->index, strerror(errno));
			vcpu_report(v, VCPU_EVENT_ERROR);
			break;
		}
		vcpu_handle_exit(v);
	}
	vcpu_gate_enter(v, -1);
	return NULL;
}

int vcpu_start(struct vcpu *v, struct error *err)
{
	char name[16];
	int ret;

	/* Counted before it runs, so a close never misses a thread still starting. */
	vcpu_gate_enter(v, 1);
	ret = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (ret) {
		vcpu_gate_enter(v, -1);
		return error_set(err, ret, "starting vCPU %u thread: %s", v->index, strerror(ret));
	}
	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(v->thread, name);
	v->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	atomic_store(&v->stop, true);
	/* immediate_exit covers a kick that lands just before the thread enters KVM_RUN. */
	v->run->immediate_exit = 1;
	if (v->host->gate) { /* a parked vCPU waits on the gate, not in KVM_RUN */
		pthread_mutex_lock(&v->host->gate->lock);
		pthread_cond_broadcast(&v->host->gate->cond);
		pthread_mutex_unlock(&v->host->gate->lock);
	}
	if (v->started)
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *v)
{
	if (!v->started)
		return;
	pthread_join(v->thread, NULL);
	v->started = false;
}
