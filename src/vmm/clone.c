// SPDX-License-Identifier: MIT
/*
 * PUT /vm/clone: one call clones the running VM N times. The request is
 * checked against this VM first (nothing is created or started for a bad
 * one); then the VM is paused, snapshotted into DIR (by default a new
 * directory on /dev/shm, so the memory file is in RAM), resumed, and the
 * spawner (spawner.h) starts N processes `bunshin-vmm --restore DIR`, each
 * with its own identity (identity.h): API socket, serial and virtio
 * console sockets, vsock CID and socket, taps and MACs, all under
 * DIR/clone-I/. Every clone maps DIR/memory copy-on-write, so they share
 * every page none of them wrote.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "machine.h"
#include "snapshot.h"
#include "../common/log.h"

#define CLONE_SHM_TEMPLATE "/dev/shm/bunshin-clone-XXXXXX"

static double clone_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A 400: the request does not fit this VM; field names what to change. */
static int clone_bad(struct api_clone_result *out, const char *field, struct error *err,
		     const char *msg)
{
	out->field = field;
	return error_set(err, EINVAL, "%s: %s", field, msg);
}

/*
 * Every disk argument a clone needs, in one place. Writable disks need a
 * copy-on-write top layer per clone (--overlay DISK=FILE), which this
 * tree does not have yet: until it does, a VM with one is not cloned.
 * Read-only disks are shared by the clones as they are.
 */
/*
 * Writable disks: the snapshot freezes them and the parent carries on in an
 * overlay inside the clone directory (so do the clones), so that directory
 * holds disk data from now on: it must be one the caller chose, never the
 * default on /dev/shm, which a host reboot empties.
 */
static int clone_check_disks(const struct vmm_config *cfg, const struct api_clone_req *req,
			     struct api_clone_result *out, struct error *err)
{
	for (unsigned int i = 0; i < cfg->ndisks; i++)
		if (!cfg->disks[i].read_only && !req->dir)
			return clone_bad(out, "dir", err,
					 "the VM has writable disks: their overlays (the "
					 "parent's and the clones') go into dir, so give one on "
					 "persistent storage");
	return 0;
}

static void clone_overlays(const struct vmm_config *cfg, const char *clone_dir, struct spawn_req *s)
{
	snprintf(s->overlay_dir, sizeof(s->overlay_dir), "%s", clone_dir);
	for (unsigned int i = 0; i < cfg->ndisks; i++)
		if (!cfg->disks[i].read_only)
			s->overlay_disk[s->noverlays++] = i;
}

static int clone_check_vsock(const struct vmm_config *cfg, const struct api_clone_req *req,
			     struct api_clone_result *out, struct error *err)
{
	uint64_t last = (uint64_t)req->cid_base + req->count - 1;

	if (!cfg->vsock.enabled)
		return req->has_cid_base ? clone_bad(out, "cid_base", err, "the VM has no vsock")
					 : 0;
	if (!req->has_cid_base)
		return clone_bad(out, "cid_base", err,
				 "the VM has vsock: give cid_base (clone i gets cid_base + i)");
	if (last > 0xfffffffeULL)
		return clone_bad(out, "cid_base", err, "cid_base + count - 1 is above 4294967294");
	if (cfg->vsock.cid >= req->cid_base && cfg->vsock.cid <= last)
		return clone_bad(out, "cid_base", err, "the range holds this VM's own CID");
	return 0;
}

static bool clone_tap_taken(const struct vmm_config *cfg, const struct api_clone_req *req,
			    unsigned int upto_i, unsigned int upto_j, const char *tap)
{
	for (unsigned int k = 0; k < cfg->nnets; k++)
		if (!strcmp(cfg->nets[k].tap, tap))
			return true;
	for (unsigned int i = 0; i <= upto_i; i++)
		for (unsigned int j = 0; j < req->nnets && (i < upto_i || j < upto_j); j++)
			if (!strcmp(req->nets[i][j].tap, tap))
				return true;
	return false;
}

static int clone_check_nets(const struct vmm_config *cfg, const struct api_clone_req *req,
			    struct api_clone_result *out, struct error *err)
{
	if (!req->nets)
		return cfg->nnets ? clone_bad(out, "nets", err,
					      "the VM has network devices: give each clone a "
					      "tap for each of them")
				  : 0;
	if (req->nnets != cfg->nnets)
		return clone_bad(out, "nets", err,
				 "each clone needs exactly one entry per network device of the VM");
	for (unsigned int i = 0; i < req->count; i++)
		for (unsigned int j = 0; j < req->nnets; j++)
			if (clone_tap_taken(cfg, req, i, j, req->nets[i][j].tap))
				return clone_bad(out, "nets", err,
						 "a tap is given twice (or is the VM's own)");
	return 0;
}

/* DIR: created (*created set), or an existing empty directory. */
static int clone_dir(const struct api_clone_req *req, struct api_clone_result *out, bool *created,
		     struct error *err)
{
	struct dirent *e;
	DIR *d;

	*created = true;
	if (!req->dir) {
		strcpy(out->dir, CLONE_SHM_TEMPLATE);
		if (!mkdtemp(out->dir))
			return error_set(err, errno, "/dev/shm: %s", strerror(errno));
		return 0;
	}
	snprintf(out->dir, sizeof(out->dir), "%s", req->dir);
	if (!mkdir(out->dir, 0700))
		return 0;
	*created = false;
	if (errno != EEXIST)
		return clone_bad(out, "dir", err, "cannot be created");
	d = opendir(out->dir);
	if (!d)
		return clone_bad(out, "dir", err, "exists and is not a readable directory");
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			break;
	closedir(d);
	return e ? clone_bad(out, "dir", err, "is not empty") : 0;
}

static int clone_check(struct machine *m, const struct api_clone_req *req,
		       struct api_clone_result *out, struct error *err)
{
	int ret;

	if (!atomic_load(&m->ready))
		return error_set(err, EAGAIN, "the VM has not been started");
	ret = clone_check_disks(m->cfg, req, out, err);
	if (!ret)
		ret = clone_check_vsock(m->cfg, req, out, err);
	if (!ret)
		ret = clone_check_nets(m->cfg, req, out, err);
	return ret;
}

/* A random locally administered unicast MAC. */
static int clone_random_mac(uint8_t mac[6], struct error *err)
{
	if (getrandom(mac, 6, 0) != 6)
		return error_set(err, EIO, "getrandom: %s", strerror(errno));
	mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02);
	return 0;
}

static void clone_nic_id(const struct vmm_config *cfg, unsigned int k, char *id, size_t size)
{
	if (cfg->nets[k].id[0])
		snprintf(id, size, "%s", cfg->nets[k].id);
	else
		snprintf(id, size, "net%u", k);
}

static int clone_nets(const struct vmm_config *cfg, const struct api_clone_req *req, unsigned int i,
		      struct api_clone_vm *vm, struct spawn_req *s, struct error *err)
{
	vm->nnets = s->nnets = cfg->nnets;
	for (unsigned int k = 0; k < cfg->nnets; k++) {
		const struct api_clone_net *n = &req->nets[i][k];

		clone_nic_id(cfg, k, s->nets[k].id, sizeof(s->nets[k].id));
		snprintf(s->nets[k].tap, sizeof(s->nets[k].tap), "%s", n->tap);
		if (n->has_mac)
			memcpy(s->nets[k].mac, n->mac, 6);
		else if (clone_random_mac(s->nets[k].mac, err))
			return -EIO;
		memcpy(vm->taps[k], s->nets[k].tap, sizeof(vm->taps[k]));
		memcpy(vm->macs[k], s->nets[k].mac, 6);
	}
	return 0;
}

/* Clone i's files and identity, into the spawner's request and the answer. */
static int clone_prepare(struct machine *m, const struct api_clone_req *req, const char *dir,
			 unsigned int i, struct api_clone_vm *vm, struct spawn_req *s,
			 struct error *err)
{
	const struct vmm_config *cfg = m->cfg;

	memset(s, 0, sizeof(*s));
	s->magic = SPAWN_MAGIC;
	s->verbose = cfg->verbose > SPAWN_MAX_VERBOSE ? SPAWN_MAX_VERBOSE : (uint32_t)cfg->verbose;
	snprintf(vm->dir, sizeof(vm->dir), "%s/clone-%u", dir, i);
	if (mkdir(vm->dir, 0700))
		return error_set(err, errno, "%s: %s", vm->dir, strerror(errno));
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	snprintf(s->log, sizeof(s->log), "%s/vmm.log", vm->dir);
	snprintf(s->api_sock, sizeof(s->api_sock), "%s/api.sock", vm->dir);
	snprintf(s->serial, sizeof(s->serial),
		 req->serial_file ? "file:%s/serial.log" : "unix:%s/serial.sock", vm->dir);
	if (cfg->console_virtio)
		snprintf(s->console_virtio, sizeof(s->console_virtio), "unix:%s/hvc0.sock",
			 vm->dir);
	if (cfg->vsock.enabled) {
		snprintf(s->vsock_uds, sizeof(s->vsock_uds), "%s/vsock.sock", vm->dir);
		s->vsock_cid = vm->cid = req->cid_base + i;
	}
	memcpy(vm->api_sock, s->api_sock, sizeof(vm->api_sock));
	memcpy(vm->serial, s->serial, sizeof(vm->serial));
	memcpy(vm->console_virtio, s->console_virtio, sizeof(vm->console_virtio));
	memcpy(vm->vsock_uds, s->vsock_uds, sizeof(vm->vsock_uds));
	clone_overlays(cfg, vm->dir, s);
	return clone_nets(cfg, req, i, vm, s, err);
}

static int clone_spawn_all(struct machine *m, const struct api_clone_req *req,
			   struct api_clone_result *out, struct error *err)
{
	struct spawn_req s;
	pid_t pid;
	int ret;

	out->vms = calloc(req->count, sizeof(*out->vms));
	if (!out->vms)
		return error_set(err, ENOMEM, "out of memory");
	for (unsigned int i = 0; i < req->count; i++) {
		ret = clone_prepare(m, req, out->dir, i, &out->vms[i], &s, err);
		if (!ret)
			ret = spawner_spawn(&m->spawner, &s, &pid, err);
		/* Not the request's fault any more: a 500, whatever the cause. */
		if (ret) {
			error_wrap(err, "clone %u (%u started)", i, i);
			return -EIO;
		}
		out->vms[i].pid = pid;
		out->count = i + 1;
	}
	return 0;
}

int machine_api_clone(void *ctx, const struct api_clone_req *req, struct api_clone_result *out,
		      struct error *err)
{
	struct machine *m = ctx;
	struct snapshot_info info = {0};
	double t0 = clone_now_ms(), t1;
	int ret = clone_check(m, req, out, err);
	bool created = false;

	if (!ret)
		ret = clone_dir(req, out, &created, err);
	if (ret)
		return ret;
	ret = machine_snapshot(m, out->dir, &info, err);
	if (ret) {
		/* Nothing started: take back a directory we made, if nothing was written into it.
		 */
		if (created)
			unlinkat(AT_FDCWD, out->dir, AT_REMOVEDIR);
		return error_wrap(err, "snapshot into %s", out->dir);
	}
	out->pause_ms = info.pause_ms;
	out->snapshot_ms = info.total_ms;
	t1 = clone_now_ms();
	ret = clone_spawn_all(m, req, out, err);
	out->spawn_ms = clone_now_ms() - t1;
	out->total_ms = clone_now_ms() - t0;
	if (!ret)
		log_info("cloned into %s: %u clones, %.1f ms (paused %.1f ms, snapshot %.1f ms, "
			 "spawn %.1f ms)",
			 out->dir, out->count, out->total_ms, out->pause_ms, out->snapshot_ms,
			 out->spawn_ms);
	return ret;
}
