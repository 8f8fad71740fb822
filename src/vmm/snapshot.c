// SPDX-License-Identifier: MIT
/*
 * Snapshots of a whole machine. A snapshot is a directory:
 *
 *   DIR/state   the state file (snapshot/snapfile.h): first the command
 *               line that built the VM ("config"), then KVM state ("vm",
 *               "vcpuN") and every device's
 *   DIR/memory  guest RAM, sparse (snapshot/memfile.h)
 *
 * Restoring rebuilds the same machine from the recorded command line, so
 * every device exists with the same configuration before its state is
 * loaded into it; the guest then carries on where it was paused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "identity.h"
#include "machine.h"
#include "snapshot.h"
#include "migrate_disks.h"
#include "snapshot_disks.h"
#include "snapshot/memfile.h"
#include "snapshot/snapfile.h"
#include "migrate.h"
#include "snapdiff.h"
#include "../common/log.h"

#define SNAP_ARGS_MAX	 1024
#define SNAP_ARG_LEN_MAX 8192

static void snapshot_path(char *buf, size_t size, const char *dir, const char *file)
{
	snprintf(buf, size, "%s/%s", dir, file);
}

/* ---- the command line ---- */

/*
 * --api-sock names this process's socket: a restored VM gets its own, or
 * none. --overlay names a restore's own disk layers (snapshot_disks.c).
 */
static bool snapshot_arg_skipped(char *const *argv, int i, int *skip)
{
	*skip = 0;
	if (!strncmp(argv[i], "--api-sock=", 11) || !strncmp(argv[i], "--restore=", 10) ||
	    !strncmp(argv[i], "--overlay=", 10) || !strncmp(argv[i], "--incoming=", 11))
		return true;
	if (!strcmp(argv[i], "--api-sock") || !strcmp(argv[i], "--restore") ||
	    !strcmp(argv[i], "--overlay") || !strcmp(argv[i], "--incoming")) {
		*skip = 1; /* and its value */
		return true;
	}
	return false;
}

void snapshot_save_config(const struct vmm_config *cfg, struct snap_writer *w)
{
	uint32_t n = 0;
	int skip;

	for (int i = 1; i < cfg->argc; i++)
		if (!snapshot_arg_skipped(cfg->argv, i, &skip))
			n++;
		else
			i += skip;
	snap_begin(w, "config", 1);
	snap_put_u32(w, n);
	for (int i = 1; i < cfg->argc; i++) {
		if (snapshot_arg_skipped(cfg->argv, i, &skip)) {
			i += skip;
			continue;
		}
		snap_put_u32(w, (uint32_t)strlen(cfg->argv[i]));
		snap_put_bytes(w, cfg->argv[i], strlen(cfg->argv[i]));
	}
	snap_end(w);
}

void snapshot_args_free(struct snapshot_args *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	free(a->argv);
	a->argv = NULL;
	a->argc = 0;
}

/* Appends a copy of s to a->argv (which has room: the caller sized it). */
static int snapshot_args_add(struct snapshot_args *a, const char *s, size_t len)
{
	char *copy = strndup(s, len);

	if (!copy)
		return -ENOMEM;
	a->argv[a->argc++] = copy;
	return 0;
}

/* The recorded arguments, checked: bounded counts and lengths, no NUL inside. */
static int snapshot_read_args(struct snap_section *s, struct snapshot_args *a, int extra,
			      struct error *err)
{
	uint32_t n = snap_get_u32(s);
	char buf[SNAP_ARG_LEN_MAX];

	if (n > SNAP_ARGS_MAX)
		return error_set(err, EBADMSG, "state: %u arguments recorded (at most %d)", n,
				 SNAP_ARGS_MAX);
	a->argv = calloc(n + extra + 2, sizeof(char *));
	if (!a->argv || snapshot_args_add(a, "bunshin-vmm", 11))
		return error_set(err, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = snap_get_u32(s);

		if (len >= sizeof(buf))
			return error_set(err, EBADMSG, "state: argument %u is %u bytes long", i,
					 len);
		snap_get_bytes(s, buf, len);
		if (memchr(buf, 0, len))
			return error_set(err, EBADMSG, "state: argument %u holds a NUL byte", i);
		if (snapshot_args_add(a, buf, len))
			return error_set(err, ENOMEM, "out of memory");
	}
	return snap_section_done(s, err);
}

int snapshot_load_config(const struct vmm_config *now, struct vmm_config *out,
			 struct snapshot_args *a, struct snap_file *f, struct error *err)
{
	char path[4096];
	int ret;

	memset(a, 0, sizeof(*a));
	snapshot_path(path, sizeof(path), now->restore, SNAPSHOT_STATE);
	ret = snap_open(f, path, err);
	if (ret)
		return ret;
	ret = snapshot_config_from(now, out, a, f, err);
	if (ret)
		return ret;
	out->restore = now->restore;
	ret = snapshot_disks_restore(now, out, f, err);
	/* a suspend's disks: their live tops, where the VM goes on writing */
	return ret ?: migrate_disks_load(f, 0, out, err);
}

int snapshot_config_from(const struct vmm_config *now, struct vmm_config *out,
			 struct snapshot_args *a, const struct snap_file *f, struct error *err)
{
	struct snap_section s;
	int ret;

	memset(a, 0, sizeof(*a));
	ret = snap_find(f, "config", 1, &s, err);
	if (!ret)
		ret = snapshot_read_args(&s, a, now->argc, err);
	if (ret)
		return ret;
	/* This command line's host-side options replace or come after the recorded ones. */
	ret = identity_merge(a, now, err);
	if (ret)
		return ret;
	ret = config_parse(out, a->argc, a->argv, 0, err);
	if (ret)
		return error_wrap(err, "the snapshot's command line");
	identity_mark(out, now);
	return 0;
}

/* ---- saving ---- */

static double snapshot_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * With the machine paused. A suspend leaves the disks as they are and
 * records where each one's live top is ("disk-layout", as a migration
 * does): the restore goes on writing there.
 */
static int snapshot_write_disks(struct machine *m, const char *dir, bool suspend, struct error *err)
{
	struct snap_writer w;
	uint32_t flags = 0;
	char path[4096];
	int ret;

	snap_writer_init(&w);
	snapshot_save_config(m->cfg, &w);
	ret = machine_save_state(m, &w, err);
	if (!ret)
		ret = snapshot_disks_save(m, dir, !suspend, &w, err);
	if (!ret && suspend)
		migrate_disks_save(m, &w, &flags);
	if (!ret) {
		snapshot_path(path, sizeof(path), dir, SNAPSHOT_STATE);
		ret = snap_save(&w, path, err);
	}
	snap_writer_free(&w);
	if (ret)
		return ret;
	snapshot_path(path, sizeof(path), dir, SNAPSHOT_MEMORY);
	return memfile_save(m->mem.memfd, m->mem.base, m->mem.size, path, err);
}

static int snapshot_write(struct machine *m, const char *dir, struct error *err)
{
	return snapshot_write_disks(m, dir, false, err);
}

static int snapshot_write_suspend(struct machine *m, const char *dir, struct error *err)
{
	return snapshot_write_disks(m, dir, true, err);
}

/* A full snapshot, with the machine paused: the next diff starts here. */
static int snapshot_write_full(struct machine *m, const char *dir, struct error *err)
{
	int ret = snapshot_write(m, dir, err);

	if (!ret)
		snapdiff_full_taken(m, dir);
	return ret;
}

int machine_snapshot_paused(struct machine *m, const char *dir, snapshot_write_fn write,
			    struct snapshot_info *info, struct error *err)
{
	double t0 = snapshot_now_ms();
	bool paused_here;
	int ret;

	if (mkdir(dir, 0700) && errno != EEXIST)
		return error_set(err, errno, "%s: %s", dir, strerror(errno));
	ret = machine_pause(m, err);
	if (ret && ret != -EALREADY)
		return ret;
	paused_here = !ret;
	info->pause_ms = snapshot_now_ms() - t0;
	ret = write(m, dir, err);
	info->total_ms = snapshot_now_ms() - t0;
	if (paused_here) {
		struct error rerr = {0};

		if (machine_resume(m, &rerr))
			log_error("after the snapshot: %s", rerr.msg);
	}
	return ret;
}

int machine_snapshot_suspend(struct machine *m, const char *dir, struct snapshot_info *info,
			     struct error *err)
{
	/* paused here and never resumed: machine_snapshot_paused() leaves it so */
	int ret = machine_pause(m, err);

	if (ret && ret != -EALREADY)
		return ret;
	error_clear(err);
	ret = machine_snapshot_paused(m, dir, snapshot_write_suspend, info, err);
	if (!ret)
		log_info("suspended into %s: %.1f ms; the VM stays paused", dir, info->total_ms);
	return ret;
}

int machine_snapshot(struct machine *m, const char *dir, struct snapshot_info *info,
		     struct error *err)
{
	int ret = machine_snapshot_paused(m, dir, snapshot_write_full, info, err);

	if (!ret)
		log_info("snapshot in %s: %.1f ms (paused after %.1f ms)", dir, info->total_ms,
			 info->pause_ms);
	return ret;
}

/* ---- restoring ---- */

/* Maps the snapshot's memory copy-on-write: nothing is read until the guest touches it. */
int machine_restore_memory(struct machine *m, struct error *err)
{
	char path[4096];

	if (m->incoming_fd >= 0)
		return gmem_init(&m->mem, m->cfg->memory, err); /* filled by migrate_receive() */
	if (snapdiff_is_diff(&m->snap))
		return snapdiff_restore_memory(m, err);
	snapshot_path(path, sizeof(path), m->cfg->restore, SNAPSHOT_MEMORY);
	return gmem_init_file(&m->mem, m->cfg->memory, path, err);
}

/* ---- KVM and device state ---- */

static int snapshot_save_kvm(struct machine *m, struct snap_writer *w, struct error *err)
{
	int ret;

	/* kvmclock ran on while paused: record it as it was when the guest stopped. */
	ret = vm_clock_restore(&m->vm, m->paused_clock);
	if (ret)
		return error_set(err, -ret, "KVM_SET_CLOCK: %s", strerror(-ret));
	for (unsigned int i = 0; i < m->nvcpus_created; i++) {
		ret = vcpu_save(&m->vcpus[i], w, err);
		if (ret)
			return ret;
	}
	return vm_save(&m->vm, w, err);
}

int machine_save_state(struct machine *m, struct snap_writer *w, struct error *err)
{
	int ret = snapshot_save_kvm(m, w, err);

	if (!ret)
		ret = machine_save_devices(m, w, err);
	return ret;
}

/* After memory (KVM reads page tables and the kvmclock area from it), before the devices. */
static int snapshot_restore_kvm(struct machine *m, const struct snap_file *f, struct error *err)
{
	struct snap_section s;
	char name[SNAP_NAME_MAX];
	int ret;

	for (unsigned int i = 0; i < m->nvcpus_created; i++) {
		snprintf(name, sizeof(name), "vcpu%u", i);
		ret = snap_find(f, name, 1, &s, err);
		if (!ret)
			ret = vcpu_restore(&m->vcpus[i], &s, err);
		if (ret)
			return ret;
	}
	/* After the vCPUs: pending IOAPIC interrupts need their LAPICs, the clock their TSCs. */
	ret = snap_find(f, "vm", 1, &s, err);
	return ret ? ret : vm_restore(&m->vm, &s, err);
}

int machine_restore_state(struct machine *m, const struct snap_file *f, struct error *err)
{
	int ret = snapshot_restore_kvm(m, f, err);

	if (!ret)
		ret = machine_restore_devices(m, f, err);
	return ret;
}

/* ---- devices ---- */

/* The virtio devices in creation order, each with the section it saves into. */
struct snapshot_vdev {
	char name[SNAP_NAME_MAX];
	struct virtio_pci *vp;
};

static void snapshot_vdev_add(struct snapshot_vdev *out, unsigned int *n, const char *kind,
			      unsigned int idx, struct virtio_pci *vp)
{
	snprintf(out[*n].name, sizeof(out[*n].name), "virtio-%s%u", kind, idx);
	out[(*n)++].vp = vp;
}

static unsigned int snapshot_vdevs(const struct machine *m, struct snapshot_vdev *out)
{
	unsigned int n = 0;

	if (m->rng)
		snapshot_vdev_add(out, &n, "rng", 0, virtio_rng_transport(m->rng));
	for (unsigned int i = 0; i < m->cfg->ndisks; i++)
		snapshot_vdev_add(out, &n, "blk", i, virtio_blk_transport(m->blk[i]));
	for (unsigned int i = 0; i < m->cfg->nnets; i++)
		snapshot_vdev_add(out, &n, "net", i, virtio_net_transport(m->net[i]));
	if (m->vcon)
		snapshot_vdev_add(out, &n, "console", 0, virtio_console_transport(m->vcon));
	if (m->vsock)
		snapshot_vdev_add(out, &n, "vsock", 0, virtio_vsock_transport(m->vsock));
	if (m->balloon)
		snapshot_vdev_add(out, &n, "balloon", 0, virtio_balloon_transport(m->balloon));
	return n;
}

#define SNAPSHOT_MAX_VDEVS (1 + CONFIG_MAX_DISKS + CONFIG_MAX_NETS + 3)

int machine_save_devices(struct machine *m, struct snap_writer *w, struct error *err)
{
	struct snapshot_vdev v[SNAPSHOT_MAX_VDEVS];
	unsigned int n = snapshot_vdevs(m, v);
	int ret = 0;

	ret |= serial_save(m->com1, w, "serial0");
	ret |= i8042_save(m->i8042, w, "i8042");
	ret |= rtc_save(m->rtc, w, "rtc");
	ret |= acpi_pm_save(m->pm, w, "acpi-pm");
	ret |= pci_root_save(m->pci, w, "pci");
	for (unsigned int i = 0; i < n; i++)
		ret |= virtio_pci_save(v[i].vp, w, v[i].name);
	return ret ? error_set(err, ENOMEM, "saving device state: out of memory or a device busy")
		   : 0;
}

/* The PCI root first: it puts the BARs back (and the ioeventfds with them) and the MSI routes. */
int machine_restore_devices(struct machine *m, const struct snap_file *f, struct error *err)
{
	struct snapshot_vdev v[SNAPSHOT_MAX_VDEVS];
	unsigned int n = snapshot_vdevs(m, v);
	int ret = serial_restore(m->com1, f, "serial0", err);

	if (!ret)
		ret = i8042_restore(m->i8042, f, "i8042", err);
	if (!ret)
		ret = rtc_restore(m->rtc, f, "rtc", err);
	if (!ret)
		ret = acpi_pm_restore(m->pm, f, "acpi-pm", err);
	if (!ret)
		ret = pci_root_restore(m->pci, f, "pci", err);
	for (unsigned int i = 0; !ret && i < n; i++)
		ret = virtio_pci_restore(v[i].vp, f, v[i].name, err);
	return ret;
}

/*
 * Pausing: resets the guest asked for are finished by the I/O thread before
 * it parks, so a snapshot or migration never carries half of one.
 */
void machine_settle_resets(struct machine *m)
{
	struct snapshot_vdev v[SNAPSHOT_MAX_VDEVS];
	unsigned int n = snapshot_vdevs(m, v);

	for (unsigned int i = 0; i < n; i++)
		if (virtio_pci_settle(v[i].vp, MACHINE_SETTLE_MS))
			log_warn("%s: reset not done after %d ms", v[i].name, MACHINE_SETTLE_MS);
}
