// SPDX-License-Identifier: MIT
/*
 * A vCPU's architectural state in and out of a snapshot's "vcpuN" section.
 *
 * Saving and restoring both go through struct vcpu_image: capture reads
 * everything from KVM, then the image is written; restore reads and checks
 * the whole section first and only then touches the vCPU, so a malformed
 * file is refused before any KVM state changes.
 *
 * Section "vcpuN", version 1 (integers little-endian; "blob" is a u32
 * byte count followed by that many bytes of the KVM structure, as the
 * x86-64 KVM ABI lays it out):
 *
 *   u32  apic_id         must match the vCPU it is restored into
 *   u32  tsc_khz         KVM_GET_TSC_KHZ; 0 when KVM could not say
 *   blob kvm_regs
 *   blob kvm_sregs
 *   u32  fpu_kind        1: blob is an XSAVE area, 0: a struct kvm_fpu
 *   blob xsave | fpu     XSAVE area of KVM_CAP_XSAVE2 bytes (4096 at least)
 *   blob kvm_xcrs        0 bytes when KVM has no KVM_CAP_XCRS
 *   blob kvm_lapic_state
 *   blob kvm_vcpu_events
 *   blob kvm_debugregs
 *   u32  mp_state
 *   u32  nmsrs, then nmsrs times { u32 index, u64 value }
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu.h"
#include "../snapshot/snapfile.h"

#define VCPU_STATE_VERSION 1
#define FPU_KIND_LEGACY	   0
#define FPU_KIND_XSAVE	   1

/* KVM refuses KVM_GET/SET_MSRS of 256 entries or more; stay well below. */
#define MSR_CHUNK 128
/* More MSRs than any KVM lists: bounds what a state file can make us allocate. */
#define VCPU_STATE_MAX_MSRS 2048

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0

struct vcpu_image {
	uint32_t apic_id;
	uint32_t tsc_khz;
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint32_t fpu_kind;
	struct kvm_fpu fpu;
	struct kvm_xsave *xsave; /* xsave_len bytes */
	uint32_t xsave_len;
	bool has_xcrs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dregs;
	uint32_t nmsrs;
	struct kvm_msr_entry *msrs;
};

static void image_free(struct vcpu_image *im)
{
	free(im->xsave);
	free(im->msrs);
}

/* Bytes of the XSAVE area KVM uses for this VM's vCPUs; 0 when KVM has no XSAVE. */
static uint32_t vcpu_xsave_size(const struct vcpu *v)
{
	int n;

	if (!kvm_check_extension(v->vm->kvm, KVM_CAP_XSAVE))
		return 0;
	/* Asked of the VM: its size covers the dynamic features this process may use. */
	n = ioctl(v->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	return n > (int)sizeof(struct kvm_xsave) ? (uint32_t)n : sizeof(struct kvm_xsave);
}

static int vcpu_ioctl(struct vcpu *v, unsigned long req, void *arg, const char *what,
		      struct error *err)
{
	if (ioctl(v->fd, req, arg) < 0)
		return error_set(err, errno, "vcpu%u: %s: %s", v->index, what, strerror(errno));
	return 0;
}

/* ---- MSRs ---- */

/* One KVM_GET/SET_MSRS of at most MSR_CHUNK entries; returns how many KVM did. */
static int msr_io(int fd, unsigned long req, struct kvm_msr_entry *e, uint32_t n)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[MSR_CHUNK];
	} buf;
	int r;

	memset(&buf.hdr, 0, sizeof(buf.hdr));
	buf.hdr.nmsrs = n;
	memcpy(buf.entries, e, n * sizeof(*e));
	r = ioctl(fd, req, &buf);
	if (r < 0)
		return -errno;
	memcpy(e, buf.entries, n * sizeof(*e));
	return r;
}

/*
 * Every MSR KVM lists that this vCPU lets us read. KVM stops at the first
 * MSR it refuses and returns how many it read; that one is dropped (some
 * listed MSRs depend on CPUID features this guest does not have) and the
 * read goes on after it.
 */
static int capture_msrs(struct vcpu *v, struct vcpu_image *im, struct error *err)
{
	const struct kvm_msr_list *list = v->vm->kvm->msrs;
	uint32_t n = list->nmsrs, done = 0;
	struct kvm_msr_entry *e = calloc(n ? n : 1, sizeof(*e));

	if (!e)
		return error_set(err, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		e[i].index = list->indices[i];
	while (done < n) {
		uint32_t chunk = n - done < MSR_CHUNK ? n - done : MSR_CHUNK;
		int r = msr_io(v->fd, KVM_GET_MSRS, e + done, chunk);

		if (r < 0) {
			free(e);
			return error_set(err, -r, "vcpu%u: KVM_GET_MSRS: %s", v->index,
					 strerror(-r));
		}
		done += (uint32_t)r;
		if ((uint32_t)r < chunk) {
			memmove(e + done, e + done + 1, (n - done - 1) * sizeof(*e));
			n--;
		}
	}
	im->msrs = e;
	im->nmsrs = n;
	return 0;
}

/*
 * KVM applies the entries of one KVM_SET_MSRS in order. The TSC goes
 * first, so that every TSC-relative MSR after it (TSC_DEADLINE above all)
 * is taken against the restored TSC; TSC_DEADLINE goes last, after the
 * LAPIC (restored before this) put the timer in TSC-deadline mode: KVM
 * ignores the deadline otherwise.
 */
static int msr_rank(uint32_t index)
{
	if (index == MSR_IA32_TSC)
		return 0;
	if (index == MSR_IA32_TSC_DEADLINE)
		return 2;
	return 1;
}

static void order_msrs(struct kvm_msr_entry *out, const struct kvm_msr_entry *in, uint32_t n)
{
	uint32_t k = 0;

	for (int rank = 0; rank <= 2; rank++)
		for (uint32_t i = 0; i < n; i++)
			if (msr_rank(in[i].index) == rank)
				out[k++] = in[i];
}

/*
 * Whether the vCPU already holds what KVM refused to set. Some MSRs KVM
 * reads back for any guest are writable only with a CPUID feature this
 * guest lacks; refusing to restore the value they already have would
 * lose nothing, so that is no error.
 */
static bool msr_already(struct vcpu *v, const struct kvm_msr_entry *want)
{
	struct kvm_msr_entry now = {.index = want->index};

	return msr_io(v->fd, KVM_GET_MSRS, &now, 1) == 1 && now.data == want->data;
}

static int set_msrs(struct vcpu *v, struct kvm_msr_entry *e, uint32_t n, struct error *err)
{
	uint32_t done = 0;

	while (done < n) {
		uint32_t chunk = n - done < MSR_CHUNK ? n - done : MSR_CHUNK;
		int r = msr_io(v->fd, KVM_SET_MSRS, e + done, chunk);

		if (r < 0)
			return error_set(err, -r, "vcpu%u: KVM_SET_MSRS: %s", v->index,
					 strerror(-r));
		done += (uint32_t)r;
		if ((uint32_t)r == chunk)
			continue;
		if (!msr_already(v, &e[done]))
			return error_set(err, EINVAL, "vcpu%u: KVM refused MSR %#x = %#llx",
					 v->index, e[done].index, (unsigned long long)e[done].data);
		done++;
	}
	return 0;
}

static int apply_msrs(struct vcpu *v, const struct vcpu_image *im, struct error *err)
{
	struct kvm_msr_entry *e = calloc(im->nmsrs ? im->nmsrs : 1, sizeof(*e));
	int ret;

	if (!e)
		return error_set(err, ENOMEM, "out of memory");
	order_msrs(e, im->msrs, im->nmsrs);
	ret = set_msrs(v, e, im->nmsrs, err);
	free(e);
	return ret;
}

/* ---- capture (save) ---- */

static int capture_fpu(struct vcpu *v, struct vcpu_image *im, struct error *err)
{
	uint32_t size = vcpu_xsave_size(v);

	if (!size) {
		im->fpu_kind = FPU_KIND_LEGACY;
		return vcpu_ioctl(v, KVM_GET_FPU, &im->fpu, "KVM_GET_FPU", err);
	}
	im->fpu_kind = FPU_KIND_XSAVE;
	im->xsave_len = size;
	im->xsave = calloc(1, size);
	if (!im->xsave)
		return error_set(err, ENOMEM, "out of memory");
	/* KVM_GET_XSAVE fills only 4096 bytes; a bigger area needs KVM_GET_XSAVE2. */
	if (size > sizeof(struct kvm_xsave))
		return vcpu_ioctl(v, KVM_GET_XSAVE2, im->xsave, "KVM_GET_XSAVE2", err);
	return vcpu_ioctl(v, KVM_GET_XSAVE, im->xsave, "KVM_GET_XSAVE", err);
}

static void capture_tsc_khz(struct vcpu *v, struct vcpu_image *im)
{
	int khz = 0;

	if (kvm_check_extension(v->vm->kvm, KVM_CAP_GET_TSC_KHZ))
		khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	im->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
}

/*
 * MP state first: reading it makes KVM accept a pending INIT or SIPI,
 * which changes the registers read after it. MSRs before the LAPIC: a
 * TSC-deadline timer that fires between the two reads then shows up as
 * an interrupt in the LAPIC read after, instead of being lost with the
 * MSR already cleared.
 */
static int capture(struct vcpu *v, struct vcpu_image *im, struct error *err)
{
	int ret;

	im->apic_id = v->apic_id;
	capture_tsc_khz(v, im);
	ret = vcpu_ioctl(v, KVM_GET_MP_STATE, &im->mp, "KVM_GET_MP_STATE", err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_GET_REGS, &im->regs, "KVM_GET_REGS", err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_GET_SREGS, &im->sregs, "KVM_GET_SREGS", err);
	if (!ret)
		ret = capture_fpu(v, im, err);
	im->has_xcrs = kvm_check_extension(v->vm->kvm, KVM_CAP_XCRS);
	if (!ret && im->has_xcrs)
		ret = vcpu_ioctl(v, KVM_GET_XCRS, &im->xcrs, "KVM_GET_XCRS", err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_GET_DEBUGREGS, &im->dregs, "KVM_GET_DEBUGREGS", err);
	if (!ret)
		ret = capture_msrs(v, im, err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_GET_LAPIC, &im->lapic, "KVM_GET_LAPIC", err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_GET_VCPU_EVENTS, &im->events, "KVM_GET_VCPU_EVENTS", err);
	return ret;
}

static void put_blob(struct snap_writer *w, const void *p, uint32_t len)
{
	snap_put_u32(w, len);
	snap_put_bytes(w, p, len);
}

static void write_image(struct snap_writer *w, const struct vcpu_image *im)
{
	snap_put_u32(w, im->apic_id);
	snap_put_u32(w, im->tsc_khz);
	put_blob(w, &im->regs, sizeof(im->regs));
	put_blob(w, &im->sregs, sizeof(im->sregs));
	snap_put_u32(w, im->fpu_kind);
	if (im->fpu_kind == FPU_KIND_XSAVE)
		put_blob(w, im->xsave, im->xsave_len);
	else
		put_blob(w, &im->fpu, sizeof(im->fpu));
	put_blob(w, &im->xcrs, im->has_xcrs ? sizeof(im->xcrs) : 0);
	put_blob(w, &im->lapic, sizeof(im->lapic));
	put_blob(w, &im->events, sizeof(im->events));
	put_blob(w, &im->dregs, sizeof(im->dregs));
	snap_put_u32(w, im->mp.mp_state);
	snap_put_u32(w, im->nmsrs);
	for (uint32_t i = 0; i < im->nmsrs; i++) {
		snap_put_u32(w, im->msrs[i].index);
		snap_put_u64(w, im->msrs[i].data);
	}
}

int vcpu_save(struct vcpu *v, struct snap_writer *w, struct error *err)
{
	struct vcpu_image im = {0};
	char name[SNAP_NAME_MAX];
	int ret;

	ret = vcpu_finish_pending_io(v);
	if (ret)
		return error_set(err, -ret, "vcpu%u: completing its last I/O exit: %s", v->index,
				 strerror(-ret));
	ret = capture(v, &im, err);
	if (!ret) {
		snprintf(name, sizeof(name), "vcpu%u", v->index);
		snap_begin(w, name, VCPU_STATE_VERSION);
		write_image(w, &im);
		snap_end(w);
	}
	image_free(&im);
	return ret;
}

/* ---- parse (restore, untrusted input) ---- */

/* A blob that must be exactly want bytes long. */
static int get_blob(struct snap_section *s, void *p, size_t want, const char *what,
		    unsigned int index, struct error *err)
{
	uint32_t len = snap_get_u32(s);

	if (s->overrun)
		return error_set(err, EBADMSG, "vcpu%u: the state ends before its %s", index, what);
	if (len != want)
		return error_set(err, EBADMSG, "vcpu%u: %s of %u bytes, this bunshin-vmm uses %zu",
				 index, what, len, want);
	snap_get_bytes(s, p, len);
	return 0;
}

static int parse_fpu(struct vcpu *v, struct snap_section *s, struct vcpu_image *im,
		     struct error *err)
{
	uint32_t host = vcpu_xsave_size(v), len;

	im->fpu_kind = snap_get_u32(s);
	if (im->fpu_kind == FPU_KIND_LEGACY)
		return get_blob(s, &im->fpu, sizeof(im->fpu), "FPU state", v->index, err);
	if (im->fpu_kind != FPU_KIND_XSAVE)
		return error_set(err, EBADMSG, "vcpu%u: unknown FPU state kind %u", v->index,
				 im->fpu_kind);
	if (!host)
		return error_set(err, ENOTSUP,
				 "vcpu%u: the state has an XSAVE area, this "
				 "host's KVM has no XSAVE",
				 v->index);
	len = snap_get_u32(s);
	if (s->overrun)
		return error_set(err, EBADMSG, "vcpu%u: the state ends before its XSAVE area",
				 v->index);
	if (len != host)
		return error_set(err, EBADMSG, "vcpu%u: XSAVE area of %u bytes, this host uses %u",
				 v->index, len, host);
	im->xsave = calloc(1, len);
	if (!im->xsave)
		return error_set(err, ENOMEM, "out of memory");
	im->xsave_len = len;
	snap_get_bytes(s, im->xsave, len);
	return 0;
}

static int parse_xcrs(struct vcpu *v, struct snap_section *s, struct vcpu_image *im,
		      struct error *err)
{
	uint32_t len = snap_get_u32(s);

	if (s->overrun)
		return error_set(err, EBADMSG, "vcpu%u: the state ends before its XCRs", v->index);
	im->has_xcrs = len != 0;
	if (!im->has_xcrs)
		return 0;
	if (!kvm_check_extension(v->vm->kvm, KVM_CAP_XCRS))
		return error_set(err, ENOTSUP,
				 "vcpu%u: the state has XCRs, this host's KVM cannot set them",
				 v->index);
	if (len != sizeof(im->xcrs))
		return error_set(err, EBADMSG,
				 "vcpu%u: XCRs of %u bytes, this bunshin-vmm uses %zu", v->index,
				 len, sizeof(im->xcrs));
	snap_get_bytes(s, &im->xcrs, len);
	if (im->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return error_set(err, EBADMSG, "vcpu%u: %u XCRs, at most %d exist", v->index,
				 im->xcrs.nr_xcrs, KVM_MAX_XCRS);
	return 0;
}

static int parse_msrs(struct vcpu *v, struct snap_section *s, struct vcpu_image *im,
		      struct error *err)
{
	uint32_t n = snap_get_u32(s);

	if (s->overrun)
		return error_set(err, EBADMSG, "vcpu%u: the state ends before its MSRs", v->index);
	/* Each MSR takes 12 bytes: a count the section cannot hold is a lie. */
	if (n > VCPU_STATE_MAX_MSRS || n > (s->len - s->pos) / 12)
		return error_set(err, EBADMSG, "vcpu%u: the state claims %u MSRs", v->index, n);
	im->msrs = calloc(n ? n : 1, sizeof(*im->msrs));
	if (!im->msrs)
		return error_set(err, ENOMEM, "out of memory");
	im->nmsrs = n;
	for (uint32_t i = 0; i < n; i++) {
		im->msrs[i].index = snap_get_u32(s);
		im->msrs[i].data = snap_get_u64(s);
	}
	return 0;
}

static int parse_head(struct vcpu *v, struct snap_section *s, struct vcpu_image *im,
		      struct error *err)
{
	im->apic_id = snap_get_u32(s);
	im->tsc_khz = snap_get_u32(s);
	if (s->overrun)
		return error_set(err, EBADMSG, "vcpu%u: the state is truncated", v->index);
	if (im->apic_id != v->apic_id)
		return error_set(err, EINVAL,
				 "vcpu%u: the state is of APIC ID %u, this vCPU's is %u", v->index,
				 im->apic_id, v->apic_id);
	if (get_blob(s, &im->regs, sizeof(im->regs), "registers", v->index, err))
		return -EBADMSG;
	return get_blob(s, &im->sregs, sizeof(im->sregs), "special registers", v->index, err);
}

static int parse(struct vcpu *v, struct snap_section *s, struct vcpu_image *im, struct error *err)
{
	int ret = parse_head(v, s, im, err);

	if (!ret)
		ret = parse_fpu(v, s, im, err);
	if (!ret)
		ret = parse_xcrs(v, s, im, err);
	if (!ret)
		ret = get_blob(s, &im->lapic, sizeof(im->lapic), "LAPIC state", v->index, err);
	if (!ret)
		ret = get_blob(s, &im->events, sizeof(im->events), "pending events", v->index, err);
	if (!ret)
		ret = get_blob(s, &im->dregs, sizeof(im->dregs), "debug registers", v->index, err);
	if (!ret) {
		im->mp.mp_state = snap_get_u32(s);
		ret = parse_msrs(v, s, im, err);
	}
	if (!ret)
		ret = snap_section_done(s, err);
	return ret;
}

/* ---- apply (restore) ---- */

/*
 * The guest's TSC must tick at the rate it was saved at. KVM scales when
 * the hardware can, and accepts a rate within its tolerance (250 ppm) of
 * the host's without scaling; anything else is refused here rather than
 * letting the guest's notion of time run fast or slow.
 */
static int apply_tsc_khz(struct vcpu *v, const struct vcpu_image *im, struct error *err)
{
	int now;

	if (!im->tsc_khz || !kvm_check_extension(v->vm->kvm, KVM_CAP_GET_TSC_KHZ))
		return 0;
	now = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	if (now > 0 && (uint32_t)now == im->tsc_khz)
		return 0;
	if (ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)im->tsc_khz) < 0)
		return error_set(err, errno,
				 "vcpu%u: the snapshot's TSC runs at %u kHz, this host's at %d "
				 "kHz, and KVM cannot scale it: %s",
				 v->index, im->tsc_khz, now, strerror(errno));
	return 0;
}

static int apply_fpu(struct vcpu *v, struct vcpu_image *im, struct error *err)
{
	if (im->fpu_kind == FPU_KIND_LEGACY)
		return vcpu_ioctl(v, KVM_SET_FPU, &im->fpu, "KVM_SET_FPU", err);
	return vcpu_ioctl(v, KVM_SET_XSAVE, im->xsave, "KVM_SET_XSAVE", err);
}

static int apply_mp_state(struct vcpu *v, struct vcpu_image *im, struct error *err)
{
	if (ioctl(v->fd, KVM_SET_MP_STATE, &im->mp) < 0)
		return error_set(err, errno, "vcpu%u: KVM_SET_MP_STATE (state %u): %s", v->index,
				 im->mp.mp_state, strerror(errno));
	return 0;
}

/*
 * The order, and why:
 *  - TSC rate before any MSR, so the TSC is written at the rate it ticks.
 *  - sregs, then regs: sregs set the mode (CR0, EFER) and the APIC base
 *    the rest is read against.
 *  - XCRs before XSAVE: XCR0 says which state components are enabled.
 *  - LAPIC after sregs (APIC base, x2APIC mode) and before the MSRs (the
 *    TSC deadline only sticks in TSC-deadline timer mode).
 *  - MP state after sregs and LAPIC: KVM_SET_SREGS may itself make a BSP
 *    at the reset vector runnable, and a received SIPI is kept as a
 *    pending LAPIC event.
 *  - Events last: KVM_SET_REGS drops pending exceptions, and they carry
 *    NMI, interrupt shadow and SMM state that must not be overwritten.
 */
static int apply(struct vcpu *v, struct vcpu_image *im, struct error *err)
{
	int ret = apply_tsc_khz(v, im, err);

	if (!ret)
		ret = vcpu_ioctl(v, KVM_SET_SREGS, &im->sregs, "KVM_SET_SREGS", err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_SET_REGS, &im->regs, "KVM_SET_REGS", err);
	if (!ret && im->has_xcrs)
		ret = vcpu_ioctl(v, KVM_SET_XCRS, &im->xcrs, "KVM_SET_XCRS", err);
	if (!ret)
		ret = apply_fpu(v, im, err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_SET_DEBUGREGS, &im->dregs, "KVM_SET_DEBUGREGS", err);
	if (!ret)
		ret = vcpu_ioctl(v, KVM_SET_LAPIC, &im->lapic, "KVM_SET_LAPIC", err);
	if (!ret)
		ret = apply_msrs(v, im, err);
	if (!ret)
		ret = apply_mp_state(v, im, err);
	/* Without this flag KVM_SET_VCPU_EVENTS keeps its own pending-NMI count. */
	im->events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
	if (!ret)
		ret = vcpu_ioctl(v, KVM_SET_VCPU_EVENTS, &im->events, "KVM_SET_VCPU_EVENTS", err);
	return ret;
}

int vcpu_restore(struct vcpu *v, struct snap_section *s, struct error *err)
{
	struct vcpu_image im = {0};
	int ret;

	if (s->version != VCPU_STATE_VERSION)
		return error_set(err, EPROTO, "vcpu%u: state section version %u, expected %u",
				 v->index, s->version, VCPU_STATE_VERSION);
	ret = parse(v, s, &im, err);
	if (!ret)
		ret = apply(v, &im, err);
	image_free(&im);
	return ret;
}
