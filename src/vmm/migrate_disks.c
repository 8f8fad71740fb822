// SPDX-License-Identifier: MIT
/* Each disk's live top layer in a migration stream (see migrate_disks.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "machine.h"
#include "migrate_disks.h"
#include "block/overlay.h"
#include "snapshot/migstream.h"

#define MIGRATE_DISKS_SECTION "disk-layout"
#define MIGRATE_DISKS_VERSION 1

/* The top layer a disk writes to, NULL for a disk without overlays. */
static const char *migrate_disk_top(struct machine *m, unsigned int i)
{
	const struct disk *d = virtio_blk_disk(m->blk[i]);

	return d->ovl ? d->ovl->l[0].path : NULL;
}

int migrate_disks_check(struct machine *m, struct error *err)
{
	for (unsigned int i = 0; i < m->cfg->ndisks; i++) {
		const char *top = migrate_disk_top(m, i);

		/* the destination keeps it in a config_disk */
		if (top && strlen(top) >= CONFIG_PATH_MAX)
			return error_set(err, EALREADY,
					 "disk %u: the path of its top layer %s is too long to "
					 "migrate",
					 i, top);
	}
	return 0;
}

/* Does the command line alone name the layers disk i runs on? (what older streams assume) */
static bool migrate_disk_named(struct machine *m, unsigned int i)
{
	const struct config_disk *c = &m->cfg->disks[i];
	const char *top = migrate_disk_top(m, i);
	char *named;
	bool same;

	if (!top)
		return true;
	if (!c->overlay[0] || c->frozen[0])
		return false;
	named = overlay_abspath(c->overlay);
	same = named && !strcmp(named, top);
	free(named);
	return same;
}

void migrate_disks_save(struct machine *m, struct snap_writer *w, uint32_t *flags)
{
	unsigned int n = m->cfg->ndisks;

	snap_begin(w, MIGRATE_DISKS_SECTION, MIGRATE_DISKS_VERSION);
	snap_put_u32(w, n);
	for (unsigned int i = 0; i < n; i++) {
		const char *top = migrate_disk_top(m, i);
		uint32_t len = top ? (uint32_t)strlen(top) : 0;

		snap_put_u8(w, top != NULL);
		snap_put_u32(w, len);
		if (len)
			snap_put_bytes(w, top, len);
		if (!migrate_disk_named(m, i))
			*flags |= MIGSTREAM_F_DISK_LAYOUT;
	}
	snap_end(w);
}

/* ---- destination ---- */

/* Disk i of the rebuilt configuration takes the stream's top (NULL: none). */
static int migrate_disk_apply(struct config_disk *d, unsigned int i, const char *top,
			      struct error *err)
{
	struct stat st;

	if (!top)
		return d->overlay[0] ? error_set(err, EBADMSG,
						 "migration stream: disk %u has overlay= but no "
						 "top layer in the disk layout",
						 i)
				     : 0;
	if (d->read_only || d->direct)
		return error_set(err, EBADMSG,
				 "migration stream: disk %u is %s, yet the disk layout gives it a "
				 "copy-on-write top",
				 i, d->read_only ? "read-only" : "direct=on");
	/* never created here: a top the source does not have is a bad stream */
	if (stat(top, &st) < 0)
		return error_set(err, errno, "migration stream: disk %u: top layer %s: %s", i, top,
				 strerror(errno));
	if (!S_ISREG(st.st_mode))
		return error_set(err, EINVAL,
				 "migration stream: disk %u: top layer %s is not a regular file", i,
				 top);
	snprintf(d->overlay, sizeof(d->overlay), "%s", top);
	return 0;
}

/* One disk's entry: its top into top ("" for none), checked. */
static int migrate_disk_read(struct snap_section *s, unsigned int i, char *top, size_t size,
			     struct error *err)
{
	uint8_t layered = snap_get_u8(s);
	uint32_t len = snap_get_u32(s);

	if (s->overrun)
		return snap_section_done(s, err);
	if (layered > 1 || len >= size || !layered != !len)
		return error_set(err, EBADMSG,
				 "migration stream: disk %u: bad layout entry (flag %u, %u-byte "
				 "path)",
				 i, layered, len);
	snap_get_bytes(s, top, len);
	top[len] = 0;
	if (s->overrun)
		return snap_section_done(s, err);
	if (strlen(top) != len || (len && top[0] != '/'))
		return error_set(err, EBADMSG,
				 "migration stream: disk %u: the top layer is not an absolute path",
				 i);
	return 0;
}

static int migrate_disks_read(struct snap_section *s, struct vmm_config *out, struct error *err)
{
	uint32_t n = snap_get_u32(s);
	char top[CONFIG_PATH_MAX];
	int ret = 0;

	if (s->overrun)
		return snap_section_done(s, err);
	if (n != out->ndisks)
		return error_set(err, EBADMSG,
				 "migration stream: a layout for %u disks, the command line has %u",
				 n, out->ndisks);
	for (unsigned int i = 0; !ret && i < n; i++) {
		ret = migrate_disk_read(s, i, top, sizeof(top), err);
		if (!ret)
			ret = migrate_disk_apply(&out->disks[i], i, top[0] ? top : NULL, err);
	}
	return ret ? ret : snap_section_done(s, err);
}

int migrate_disks_load(const struct snap_file *f, uint32_t flags, struct vmm_config *out,
		       struct error *err)
{
	struct snap_section s;
	int ret = snap_find(f, MIGRATE_DISKS_SECTION, MIGRATE_DISKS_VERSION, &s, err);

	if (ret == -ENOENT && !(flags & MIGSTREAM_F_DISK_LAYOUT)) {
		error_clear(err); /* a stream from before layouts travelled */
		return 0;
	}
	if (ret == -ENOENT)
		return error_set(err, EBADMSG,
				 "migration stream: its header says the disks run on layers the "
				 "command line does not name, but it has no disk layout");
	return ret ? ret : migrate_disks_read(&s, out, err);
}
