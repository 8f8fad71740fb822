// SPDX-License-Identifier: MIT
/* Freezing disks into snapshots and giving restored VMs their own top layers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine.h"
#include "snapshot_disks.h"
#include "block/overlay.h"
#include "../common/log.h"

#define SNAPSHOT_DISKS_VERSION 1

static int snapshot_disk_freeze(struct machine *m, unsigned int i, const char *dir,
				struct error *err)
{
	char path[CONFIG_PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/disk%u.live.ovl", dir, i) >= (int)sizeof(path))
		return error_set(err, ENAMETOOLONG, "disk %u: snapshot path too long", i);
	if (virtio_blk_freeze(m->blk[i], path, err))
		return error_wrap(err, "freezing disk %u", i);
	log_info("disk %u: frozen into the snapshot; writes go to %s", i, path);
	return 0;
}

int snapshot_disks_save(struct machine *m, const char *dir, bool freeze, struct snap_writer *w,
			struct error *err)
{
	unsigned int n = m->cfg->ndisks;

	for (unsigned int i = 0; freeze && i < n; i++)
		if (!m->cfg->disks[i].read_only && snapshot_disk_freeze(m, i, dir, err))
			return -err->code;
	snap_begin(w, "disks", SNAPSHOT_DISKS_VERSION);
	snap_put_u32(w, n);
	for (unsigned int i = 0; i < n; i++) {
		const struct disk *d = virtio_blk_disk(m->blk[i]);
		bool frozen = freeze && !m->cfg->disks[i].read_only && d->ovl;
		const struct ovl_layer *l = frozen ? &d->ovl->l[1] : NULL;

		snap_put_u8(w, frozen);
		snap_put_u8(w, frozen ? (uint8_t)l->fmt : 0);
		snap_put_u32(w, frozen ? (uint32_t)strlen(l->path) : 0);
		if (frozen)
			snap_put_bytes(w, l->path, strlen(l->path));
	}
	snap_end(w);
	return 0;
}

/* ---- restoring ---- */

static int snapshot_disks_read(struct snap_section *s, struct vmm_config *out, struct error *err)
{
	uint32_t n = snap_get_u32(s);

	if (n != out->ndisks)
		return error_set(err, EBADMSG, "state: %u disks recorded, %u on the command line",
				 n, out->ndisks);
	for (unsigned int i = 0; i < n; i++) {
		struct config_disk *d = &out->disks[i];
		uint8_t frozen = snap_get_u8(s), fmt = snap_get_u8(s);
		uint32_t len = snap_get_u32(s);

		if (frozen > 1 || fmt > OVL_FMT_OVERLAY || len >= sizeof(d->frozen) ||
		    (frozen && !len) || (!frozen && len))
			return error_set(err, EBADMSG, "state: disk %u: bad frozen layer", i);
		snap_get_bytes(s, d->frozen, len);
		d->frozen[len] = 0;
		if (strlen(d->frozen) != len)
			return error_set(err, EBADMSG, "state: disk %u: bad frozen layer", i);
		d->frozen_is_overlay = fmt == OVL_FMT_OVERLAY;
		d->overlay[0] = 0; /* the snapshotted VM's top is frozen now */
	}
	return snap_section_done(s, err);
}

/* This command line's --overlay options onto the restored disks. */
static int snapshot_disks_named(const struct vmm_config *now, struct vmm_config *out,
				struct error *err)
{
	for (unsigned int k = 0; k < now->noverlays; k++) {
		const struct config_overlay *o = &now->overlays[k];
		int i = config_find_disk(out, o->disk, o->disk_len);

		if (i < 0)
			return error_set(err, ENOENT,
					 "--overlay: no disk '%.*s' in the snapshot (an id, path "
					 "or index)",
					 (int)o->disk_len, o->disk);
		if (!out->disks[i].frozen[0])
			return error_set(err, EINVAL,
					 "--overlay: disk '%.*s' is not a writable disk of the "
					 "snapshot",
					 (int)o->disk_len, o->disk);
		snprintf(out->disks[i].overlay, sizeof(out->disks[i].overlay), "%s", o->file);
	}
	return 0;
}

static bool snapshot_disk_over(const struct overlay *o, const char *frozen)
{
	struct stat st;

	return stat(frozen, &st) == 0 && st.st_dev == o->l[1].dev && st.st_ino == o->l[1].ino;
}

/* Created fresh over the frozen top, or an existing overlay checked now. */
static int snapshot_disk_prepare(struct config_disk *d, unsigned int i, struct error *err)
{
	enum ovl_fmt fmt = d->frozen_is_overlay ? OVL_FMT_OVERLAY : OVL_FMT_RAW;
	struct overlay *o = NULL;
	int ret;

	if (access(d->overlay, F_OK) == 0)
		ret = overlay_open(&o, d->overlay, true, err);
	else
		ret = overlay_create(d->overlay, d->frozen, fmt, err);
	if (!ret && o && !snapshot_disk_over(o, d->frozen))
		ret = error_set(err, EINVAL, "%s is not an overlay over the snapshot's disk %s",
				d->overlay, d->frozen);
	overlay_close(o);
	return ret ? error_wrap(err, "--overlay %u=%s", i, d->overlay) : 0;
}

int snapshot_disks_restore(const struct vmm_config *now, struct vmm_config *out,
			   const struct snap_file *f, struct error *err)
{
	struct snap_section s;
	int ret = snap_find(f, "disks", SNAPSHOT_DISKS_VERSION, &s, err);

	if (ret == -ENOENT && !now->noverlays) {
		error_clear(err); /* a snapshot from before disks were frozen */
		return 0;
	}
	if (!ret)
		ret = snapshot_disks_read(&s, out, err);
	if (!ret)
		ret = snapshot_disks_named(now, out, err);
	for (unsigned int i = 0; !ret && i < out->ndisks; i++) {
		struct config_disk *d = &out->disks[i];

		if (!d->frozen[0])
			continue;
		if (!d->overlay[0]) {
			snprintf(d->overlay, sizeof(d->overlay), "%s/disk%u.restore-%d.ovl",
				 now->restore, i, (int)getpid());
			log_info("disk %u: no --overlay given; writes go to %s", i, d->overlay);
		}
		ret = snapshot_disk_prepare(d, i, err);
	}
	return ret;
}
