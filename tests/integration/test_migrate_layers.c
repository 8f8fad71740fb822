// SPDX-License-Identifier: MIT
/*
 * Live migration of VMs whose disks run on copy-on-write layers their
 * command line does not name: after a snapshot froze the disk, after a
 * restore with --overlay, twice in a row. The guest (test=virtio-blk
 * blk_wait=1 blk_probe=1 blk_hold=N) writes the pattern of each seed it is
 * told and first reports whose pattern the disk held (found=), so a
 * destination that opened the wrong layers reports the wrong seed; the
 * layer files are then read back here, through the overlay code.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "../../src/vmm/block/overlay.h"

static char *const dir = harness_dir;

TestSuite(miglayers, .init = harness_dir_setup, .fini = harness_dir_teardown, .timeout = 240);

#define IMG_SIZE  (16 << 20)
#define SECTOR	  16 /* where the guest writes (blk_sector) */
#define BLK_BYTES 4096
#define GUEST	  "test=virtio-blk blk_wait=1 blk_probe=1 blk_keep=1 blk_sector=16 blk_hold="

/* One VMM: console on DIR/<tag>.con, API on DIR/<tag>.api. */
struct vm {
	struct harness_proc p;
	char tag[16], sock[128], con[128];
	int fd; /* the console, -1 until connected */
};

static void vm_start(struct vm *v, const char *tag, const char *const *args)
{
	const char *argv[24];
	char serial[136];
	int n = 0;

	snprintf(v->tag, sizeof(v->tag), "%s", tag);
	snprintf(v->sock, sizeof(v->sock), "%s/%s.api", dir, tag);
	snprintf(v->con, sizeof(v->con), "%s/%s.con", dir, tag);
	snprintf(serial, sizeof(serial), "unix:%s", v->con);
	v->fd = -1;
	for (int i = 0; args[i] && n < 19; i++)
		argv[n++] = args[i];
	argv[n++] = "--serial";
	argv[n++] = serial;
	argv[n++] = "--api-sock";
	argv[n++] = v->sock;
	argv[n] = NULL;
	harness_proc_start(&v->p, dir, tag, argv);
}

static void vm_connect(struct vm *v)
{
	if (v->fd < 0)
		v->fd = harness_unix_connect(v->con, 20000);
	cr_assert_geq(v->fd, 0, "%s: no console; stderr:\n%s", v->tag, harness_proc_stderr(&v->p));
}

static void vm_wait(struct vm *v, const char *text)
{
	vm_connect(v);
	harness_wait_text(v->fd, text, 30000);
}

/*
 * A guest on disk (and disk2, a second --disk, unless NULL) that takes
 * 1 + hold seeds; returns once it asks for the first.
 */
static void vm_boot2(struct vm *v, const char *tag, const char *disk, const char *disk2, int hold)
{
	char cmdline[160];

	snprintf(cmdline, sizeof(cmdline), GUEST "%d", hold);
	{
		const char *args[] = {"--kernel",
				      harness_guest("elf"),
				      "--cmdline",
				      cmdline,
				      "--memory",
				      "64M",
				      "--disk",
				      disk,
				      disk2 ? "--disk" : NULL,
				      disk2,
				      NULL};

		vm_start(v, tag, args);
	}
	vm_wait(v, "name=virtio-blk result=ready");
}

static void vm_boot(struct vm *v, const char *tag, const char *disk, int hold)
{
	vm_boot2(v, tag, disk, NULL, hold);
}

static void vm_send_seed(struct vm *v, unsigned int seed)
{
	char send[32];

	snprintf(send, sizeof(send), "seed=%u\n", seed);
	vm_connect(v);
	cr_assert_eq(write(v->fd, send, strlen(send)), (ssize_t)strlen(send));
}

/* A seed for a round that is not the last: the guest then reports round want ("round=1
 * found=none"). */
static void vm_seed(struct vm *v, unsigned int seed, const char *want)
{
	vm_send_seed(v, seed);
	vm_wait(v, want);
}

/* The last seed: the guest passes, its probe found what want says, and it powers off. */
static void vm_finish(struct vm *v, unsigned int seed, const char *want)
{
	static char out[16384];
	size_t len = 0;

	vm_send_seed(v, seed);
	out[0] = 0;
	harness_read_until(v->fd, out, sizeof(out), &len, "never printed", 30000);
	close(v->fd);
	v->fd = -1;
	cr_assert(strstr(out, "name=virtio-blk result=pass"), "%s: %s", v->tag, out);
	cr_assert(strstr(out, want), "%s: want '%s': %s", v->tag, want, out);
	cr_assert_eq(harness_proc_wait(&v->p, 30000), 0, "%s", harness_proc_stderr(&v->p));
}

static void vm_snapshot(struct vm *v, const char *snap)
{
	char body[256], reply[1024];

	snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snap);
	cr_assert_eq(harness_api(v->sock, "PUT", "/vm/snapshot", body, reply, sizeof(reply)), 200,
		     "%s", reply);
}

/* from moves to a fresh --incoming VMM, to (tag): from exits 0, to runs. */
static void vm_migrate(struct vm *from, struct vm *to, const char *tag)
{
	char url[128], body[192], reply[1024];

	snprintf(url, sizeof(url), "unix:%s/%s.mig", dir, tag);
	{
		const char *args[] = {"--incoming", url, NULL};

		vm_start(to, tag, args);
	}
	harness_wait_listening(url);
	snprintf(body, sizeof(body), "{\"url\": \"%s\"}", url);
	cr_assert_eq(harness_api(from->sock, "PUT", "/vm/migrate", body, reply, sizeof(reply)), 200,
		     "%s\n%s", reply, harness_proc_stderr(&from->p));
	cr_assert_eq(harness_proc_wait(&from->p, 30000), 0, "%s", harness_proc_stderr(&from->p));
	close(from->fd);
	from->fd = -1;
	harness_wait_running(to->sock, 10000);
}

/* ---- the layers, read back ---- */

static void empty_image(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, IMG_SIZE), 0);
	close(fd);
}

/* What the guest writes for seed (guest/virtio_blk.c); seed < 0: zeroes. */
static void pattern(uint8_t *p, int seed)
{
	for (unsigned int i = 0; i < BLK_BYTES; i++)
		p[i] = seed < 0 ? 0
				: (uint8_t)(i * 7 + (i >> 9) * 13 + (unsigned int)seed + SECTOR);
}

static uint32_t file_crc(const char *path)
{
	uint8_t *buf = malloc(IMG_SIZE);
	int fd = open(path, O_RDONLY);
	uint32_t crc;

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, IMG_SIZE, 0), IMG_SIZE);
	close(fd);
	crc = harness_crc32(buf, IMG_SIZE);
	free(buf);
	return crc;
}

static void check_raw(const char *img, int seed)
{
	uint8_t got[BLK_BYTES], want[BLK_BYTES];
	int fd = open(img, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, got, sizeof(got), SECTOR * 512), (ssize_t)sizeof(got));
	close(fd);
	pattern(want, seed);
	cr_assert(!memcmp(got, want, sizeof(got)), "%s does not hold seed %d's pattern", img, seed);
}

/* The chain topped by top reads seed's pattern where the guest writes, from the top itself. */
static void check_top(const char *top, int seed)
{
	uint8_t got[BLK_BYTES], want[BLK_BYTES];
	struct overlay *o = NULL;
	struct error err = {0};
	unsigned int layer;

	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_pread(o, got, sizeof(got), SECTOR * 512), 0);
	pthread_mutex_lock(&o->lock);
	layer = overlay_layer_of(o, SECTOR * 512 / o->block_size);
	pthread_mutex_unlock(&o->lock);
	overlay_close(o);
	pattern(want, seed);
	cr_assert(!memcmp(got, want, sizeof(got)), "%s does not read seed %d's pattern", top, seed);
	cr_assert_eq(layer, 0, "%s: the write is in layer %u, not in the top", top, layer);
}

/* VM r ("r") restored from snapshot dir snap, its disk 0 writing to overlay ovl; running. */
static void vm_restore(struct vm *r, const char *snap, const char *ovl)
{
	char arg[160];
	const char *args[] = {"--restore", snap, "--overlay", arg, NULL};

	snprintf(arg, sizeof(arg), "0=%s", ovl);
	vm_start(r, "r", args);
	harness_wait_running(r->sock, 10000);
}

/*
 * A snapshot froze the disk (the VM writes DIR/disk0.live.ovl): the
 * destination reads what was written before it, writes into that live top,
 * and the frozen image stays as it was. A snapshot on the destination
 * freezes the chain it really runs on, and restores.
 */
Test(miglayers, snapshot_then_migrate)
{
	char img[96], disk[128], s1[96], s2[96], top1[128], top2[128], ovl[96];
	struct vm a, b, r;
	uint32_t crc;

	harness_require_kvm();
	snprintf(img, sizeof(img), "%s/base.img", dir);
	empty_image(img);
	snprintf(disk, sizeof(disk), "path=%s", img);
	vm_boot(&a, "a", disk, 2);
	vm_seed(&a, 7, "round=1 found=none");
	snprintf(s1, sizeof(s1), "%s/snap1", dir);
	vm_snapshot(&a, s1);
	crc = file_crc(img);
	vm_migrate(&a, &b, "b");
	vm_seed(&b, 9, "round=2 found=7");
	snprintf(s2, sizeof(s2), "%s/snap2", dir);
	vm_snapshot(&b, s2);
	vm_finish(&b, 11, "readonly=0 found=9");

	cr_assert_eq(file_crc(img), crc, "the frozen image was written after the snapshot");
	check_raw(img, 7);
	snprintf(top1, sizeof(top1), "%s/disk0.live.ovl", s1);
	snprintf(top2, sizeof(top2), "%s/disk0.live.ovl", s2);
	check_top(top1, 9);
	check_top(top2, 11);

	/* the destination's snapshot, restored under an overlay of its own */
	snprintf(ovl, sizeof(ovl), "%s/r.ovl", dir);
	vm_restore(&r, s2, ovl);
	vm_finish(&r, 13, "readonly=0 found=9");
	check_top(ovl, 13);
	check_top(top1, 9);
	check_raw(img, 7);
}

/* A clone (--restore, --overlay) writes, moves, and its destination reads those writes. */
Test(miglayers, restore_write_migrate)
{
	char img[96], disk[128], snap[96], live[128], ovl[96];
	struct vm a, r, b;

	harness_require_kvm();
	snprintf(img, sizeof(img), "%s/base.img", dir);
	empty_image(img);
	snprintf(disk, sizeof(disk), "path=%s", img);
	vm_boot(&a, "a", disk, 1);
	snprintf(snap, sizeof(snap), "%s/snap", dir);
	vm_snapshot(&a, snap); /* before any write */
	vm_seed(&a, 3, "round=1 found=none");
	vm_finish(&a, 4, "readonly=0 found=3");

	snprintf(ovl, sizeof(ovl), "%s/clone.ovl", dir);
	vm_restore(&r, snap, ovl);
	vm_seed(&r, 21, "round=1 found=none");
	vm_migrate(&r, &b, "b");
	vm_finish(&b, 22, "readonly=0 found=21");

	check_top(ovl, 22);
	snprintf(live, sizeof(live), "%s/disk0.live.ovl", snap);
	check_top(live, 4);
	check_raw(img, -1);
}

/* A -> B -> C with overlay= on the command line, frozen under a snapshot's live top. */
Test(miglayers, two_migrations_in_a_row)
{
	char img[96], aovl[96], disk[224], snap[96], live[128];
	struct vm a, b, c;

	harness_require_kvm();
	snprintf(img, sizeof(img), "%s/base.img", dir);
	snprintf(aovl, sizeof(aovl), "%s/a.ovl", dir);
	empty_image(img);
	snprintf(disk, sizeof(disk), "path=%s,overlay=%s", img, aovl);
	vm_boot(&a, "a", disk, 2);
	vm_seed(&a, 5, "round=1 found=none");
	snprintf(snap, sizeof(snap), "%s/snap", dir);
	vm_snapshot(&a, snap);
	vm_migrate(&a, &b, "b");
	vm_seed(&b, 6, "round=2 found=5");
	vm_migrate(&b, &c, "c");
	vm_finish(&c, 8, "readonly=0 found=6");

	check_top(aovl, 5);
	snprintf(live, sizeof(live), "%s/disk0.live.ovl", snap);
	check_top(live, 8);
	check_raw(img, -1);
}

/* ---- hostile layouts ---- */

#define HDR_LEN	     28 /* the stream's fixed header (snapshot/migstream.h) */
#define SNAP_HDR     16 /* the state file's (snapshot/snapfile.h) */
#define SECTION_HDR  32 /* name[24], version, length */
#define STREAM_BYTES 65536

/*
 * The captured header and command line with the "disk-layout" section
 * replaced by (version, payload), or left out (payload NULL), every CRC
 * right: what only the destination's own checks can refuse.
 */
static size_t with_layout(const uint8_t *head, size_t hlen, uint32_t version, const void *payload,
			  uint32_t plen, uint8_t *out)
{
	size_t off = HDR_LEN + SNAP_HDR, n = off;
	uint32_t cfg, crc;

	memcpy(out, head, off);
	while (off + SECTION_HDR <= hlen) {
		uint32_t len;
		size_t total;

		memcpy(&len, head + off + 28, 4);
		total = SECTION_HDR + len + 4;
		cr_assert_leq(off + total, hlen);
		if (strcmp((const char *)head + off, "disk-layout")) {
			memcpy(out + n, head + off, total);
			n += total;
		} else if (payload) {
			memcpy(out + n, head + off, 24);
			memcpy(out + n + 24, &version, 4);
			memcpy(out + n + 28, &plen, 4);
			memcpy(out + n + SECTION_HDR, payload, plen);
			crc = harness_crc32(out + n, SECTION_HDR + plen);
			memcpy(out + n + SECTION_HDR + plen, &crc, 4);
			n += SECTION_HDR + plen + 4;
		}
		off += total;
	}
	cfg = (uint32_t)(n - HDR_LEN);
	memcpy(out + 24, &cfg, 4);
	return n;
}

/* One disk's layout entry (flag, length, path bytes) at p; its size. */
static uint32_t entry(uint8_t *p, uint8_t flag, uint32_t len, const char *path, size_t path_bytes)
{
	p[0] = flag;
	memcpy(p + 1, &len, 4);
	memcpy(p + 5, path, path_bytes);
	return (uint32_t)(5 + path_bytes);
}

/* A layout payload: ndisks, one entry, then `plain` entries of disks without overlays. */
static uint32_t layout(uint8_t *p, uint32_t ndisks, uint8_t flag, uint32_t len, const char *path,
		       size_t path_bytes, unsigned int plain)
{
	uint32_t n = 4;

	memcpy(p, &ndisks, 4);
	n += entry(p + n, flag, len, path, path_bytes);
	while (plain--)
		n += entry(p + n, 0, 0, "", 0);
	return n;
}

static void refused(const char *want, const uint8_t *head, size_t hlen, uint32_t version,
		    const uint8_t *payload, uint32_t plen)
{
	static uint8_t out[STREAM_BYTES];
	size_t n = with_layout(head, hlen, version, payload, plen, out);

	harness_expect_refusal(want, out, n, NULL, 0);
}

/* Another chain: an overlay over an image that is not the VM's. */
static void foreign_overlay(char *path, size_t size)
{
	char img[96];
	struct error err = {0};

	snprintf(img, sizeof(img), "%s/other.img", dir);
	empty_image(img);
	snprintf(path, size, "%s/other.ovl", dir);
	cr_assert_eq(overlay_create(path, img, OVL_FMT_RAW, &err), 0, "%s", err.msg);
}

/*
 * A corrupt or hostile disk layout is refused by the destination with one
 * line; the source, whose migration failed, runs on.
 */
Test(miglayers, hostile_layouts_are_refused)
{
	static uint8_t head[STREAM_BYTES];
	char img[96], ro[96], aovl[96], disk[224], disk2[128], snap[96], top[128], other[128];
	char path[96], saved[96];
	char body[256], reply[1024], rel[] = "x/disk0.live.ovl", nul[] = "/tmp\0x";
	uint8_t p[8192];
	uint32_t n;
	struct vm a;
	ssize_t hlen;
	pid_t fake;
	int fd, status;

	harness_require_kvm();
	snprintf(img, sizeof(img), "%s/base.img", dir);
	snprintf(ro, sizeof(ro), "%s/ro.img", dir);
	snprintf(aovl, sizeof(aovl), "%s/a.ovl", dir);
	empty_image(img);
	empty_image(ro);
	snprintf(disk, sizeof(disk), "path=%s,overlay=%s", img, aovl);
	snprintf(disk2, sizeof(disk2), "path=%s,readonly=on", ro);
	vm_boot2(&a, "a", disk, disk2, 1);
	snprintf(snap, sizeof(snap), "%s/snap", dir);
	vm_snapshot(&a, snap);
	snprintf(top, sizeof(top), "%s/disk0.live.ovl", snap);

	/* the real header of a VM on a frozen disk, from a destination that hangs up */
	snprintf(path, sizeof(path), "%s/grab.sock", dir);
	snprintf(saved, sizeof(saved), "%s/head.bin", dir);
	fake = harness_fake_destination(path, 0, saved);
	snprintf(body, sizeof(body), "{\"url\": \"unix:%s\"}", path);
	cr_assert_eq(harness_api(a.sock, "PUT", "/vm/migrate", body, reply, sizeof(reply)), 502,
		     "%s", reply);
	waitpid(fake, &status, 0);
	fd = open(saved, O_RDONLY);
	cr_assert_geq(fd, 0);
	hlen = read(fd, head, sizeof(head));
	close(fd);
	cr_assert_gt(hlen, HDR_LEN + SNAP_HDR);
	cr_assert_eq(head[12], 1, "the header flags a layout older VMMs cannot apply");
	cr_assert(memmem(head, (size_t)hlen, top, strlen(top)), "the live top travels");

	refused("a layout for 3 disks, the command line has 2", head, (size_t)hlen, 1, p,
		layout(p, 3, 1, (uint32_t)strlen(top), top, strlen(top), 1));
	refused("disk 0: bad layout entry (flag 2", head, (size_t)hlen, 1, p,
		layout(p, 2, 2, (uint32_t)strlen(top), top, strlen(top), 1));
	refused("disk 0: bad layout entry (flag 0, 5", head, (size_t)hlen, 1, p,
		layout(p, 2, 0, 5, "/a/b/", 5, 1));
	refused("disk 0: bad layout entry (flag 1, 5000-byte path)", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, 5000, top, strlen(top), 1));
	refused("state section 'disk-layout' is too short", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, (uint32_t)strlen(top) + 40, top, strlen(top), 1));
	refused("state section 'disk-layout' has 3 unexpected bytes", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, (uint32_t)strlen(top), top, strlen(top), 1) + 3);
	refused("disk 0: the top layer is not an absolute path", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, (uint32_t)strlen(rel), rel, strlen(rel), 1));
	refused("disk 0: the top layer is not an absolute path", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, 6, nul, 6, 1));
	refused("disk 0: top layer /nonexistent/top.ovl: No such file or directory", head,
		(size_t)hlen, 1, p, layout(p, 2, 1, 20, "/nonexistent/top.ovl", 20, 1));
	refused("is not a regular file", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, (uint32_t)strlen(dir), dir, strlen(dir), 1));
	refused("is version 2; this bunshin-vmm reads up to 1", head, (size_t)hlen, 2, p,
		layout(p, 2, 1, (uint32_t)strlen(top), top, strlen(top), 1));
	refused("but it has no disk layout", head, (size_t)hlen, 1, NULL, 0);
	refused("disk 0 has overlay= but no top layer in the disk layout", head, (size_t)hlen, 1, p,
		layout(p, 2, 0, 0, "", 0, 1));
	n = layout(p, 2, 1, (uint32_t)strlen(top), top, strlen(top), 0);
	n += entry(p + n, 1, (uint32_t)strlen(top), top, strlen(top));
	refused("disk 1 is read-only, yet the disk layout gives it a copy-on-write top", head,
		(size_t)hlen, 1, p, n);
	/* well-formed, but not the VM's chain: the raw image itself, another disk's overlay */
	refused("base.img: bad magic (not an overlay)", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, (uint32_t)strlen(img), img, strlen(img), 1));
	foreign_overlay(other, sizeof(other));
	refused("not over this image", head, (size_t)hlen, 1, p,
		layout(p, 2, 1, (uint32_t)strlen(other), other, strlen(other), 1));

	/* the source runs on, on its own disk */
	cr_assert_eq(harness_api(a.sock, "GET", "/vm", NULL, reply, sizeof(reply)), 200);
	cr_assert(strstr(reply, "\"state\":\"running\""), "%s", reply);
	vm_seed(&a, 31, "round=1 found=none");
	vm_finish(&a, 32, "readonly=0 found=31");
	check_top(top, 32);
	check_raw(img, -1);
}

static bool read_all(int fd, uint8_t *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t r = read(fd, buf + got, len - got);

		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/*
 * Copies the source's bytes to the destination and back until one hangs
 * up; a destination that stops reading is still read to the end: its
 * answer is what the source must hear.
 */
static void relay(int src, int dst)
{
	static uint8_t buf[65536];
	struct pollfd p[2] = {{.fd = dst, .events = POLLIN}, {.fd = src, .events = POLLIN}};
	bool dst_gone = false;
	ssize_t r;

	while (poll(p, 2, 30000) > 0) {
		if (p[0].revents) {
			r = read(dst, buf, sizeof(buf));
			if (r <= 0 || write(src, buf, (size_t)r) != r)
				return;
		}
		if (p[1].revents) {
			r = read(src, buf, sizeof(buf));
			if (r <= 0)
				return;
			if (!dst_gone && write(dst, buf, (size_t)r) != r)
				dst_gone = true;
		}
	}
}

/*
 * A man in the middle on path: the source's stream goes on to the
 * destination at to, its disk layout's top replaced by top; the
 * destination's answer comes back.
 */
static pid_t layout_proxy(const char *path, const char *to, const char *top)
{
	int lfd;
	pid_t pid = harness_listen_and_fork(path, &lfd);

	if (pid == 0) {
		static uint8_t head[STREAM_BYTES], out[STREAM_BYTES], p[4096];
		int src = accept(lfd, NULL, NULL), dst = harness_unix_connect(to, 5000);
		uint32_t cfg;
		size_t n;

		signal(SIGPIPE, SIG_IGN);
		if (src < 0 || dst < 0 || !read_all(src, head, HDR_LEN))
			_exit(1);
		memcpy(&cfg, head + 24, 4);
		if (cfg > STREAM_BYTES - HDR_LEN || !read_all(src, head + HDR_LEN, cfg))
			_exit(1);
		n = with_layout(head, HDR_LEN + cfg, 1, p,
				layout(p, 1, 1, (uint32_t)strlen(top), top, strlen(top), 0), out);
		if (write(dst, out, n) != (ssize_t)n)
			_exit(1);
		relay(src, dst);
		_exit(0);
	}
	close(lfd);
	return pid;
}

/*
 * The same through a real source and destination: the destination refuses
 * the rewritten layout, the source hears why and runs on, and then
 * migrates for real.
 */
Test(miglayers, hostile_layout_in_a_real_migration)
{
	char img[96], disk[128], snap[96], top[128], in[96], proxy[96], body[256], reply[1024];
	struct vm a, b, bad;
	pid_t mitm;
	int status;

	harness_require_kvm();
	snprintf(img, sizeof(img), "%s/base.img", dir);
	empty_image(img);
	snprintf(disk, sizeof(disk), "path=%s", img);
	vm_boot(&a, "a", disk, 1);
	snprintf(snap, sizeof(snap), "%s/snap", dir);
	vm_snapshot(&a, snap);
	vm_seed(&a, 41, "round=1 found=none");

	snprintf(in, sizeof(in), "unix:%s/bad.mig", dir);
	{
		const char *args[] = {"--incoming", in, NULL};

		vm_start(&bad, "bad", args);
	}
	harness_wait_listening(in);
	snprintf(proxy, sizeof(proxy), "%s/proxy.sock", dir);
	mitm = layout_proxy(proxy, in + 5, "/nonexistent/top.ovl");
	snprintf(body, sizeof(body), "{\"url\": \"unix:%s\"}", proxy);
	cr_assert_eq(harness_api(a.sock, "PUT", "/vm/migrate", body, reply, sizeof(reply)), 502,
		     "%s", reply);
	cr_assert(strstr(reply, "the destination failed: migration stream: disk 0: top layer "
				"/nonexistent/top.ovl: No such file or directory"),
		  "%s", reply);
	waitpid(mitm, &status, 0);
	cr_assert_eq(harness_proc_wait(&bad.p, 30000), 1, "%s", harness_proc_stderr(&bad.p));
	cr_assert_eq(harness_count(harness_proc_stderr(&bad.p), "\n"), 1, "one line: %s",
		     harness_proc_stderr(&bad.p));
	cr_assert_eq(harness_api(a.sock, "GET", "/vm", NULL, reply, sizeof(reply)), 200);
	cr_assert(strstr(reply, "\"state\":\"running\""), "%s", reply);

	vm_migrate(&a, &b, "b");
	vm_finish(&b, 42, "readonly=0 found=41");
	snprintf(top, sizeof(top), "%s/disk0.live.ovl", snap);
	check_top(top, 42);
	check_raw(img, -1);
}

/*
 * A suspend: the snapshot leaves the disks unfrozen and the VM paused;
 * the VMM is stopped, and a restore (no --overlay) goes on writing the
 * very top it had, which is not frozen under anything new. Twice, after a
 * snapshot had moved the live top.
 */
Test(miglayers, suspend_keeps_the_live_top)
{
	char img[96], aovl[96], disk[224], snap[96], s1[96], s2[96], body[256], reply[1024];
	const char *args[] = {"--restore", s1, NULL};
	struct vm a, r;

	harness_require_kvm();
	snprintf(img, sizeof(img), "%s/base.img", dir);
	empty_image(img);
	snprintf(aovl, sizeof(aovl), "%s/a.ovl", dir);
	snprintf(disk, sizeof(disk), "path=%s,overlay=%s", img, aovl);
	vm_boot(&a, "a", disk, 2);
	vm_seed(&a, 5, "round=1 found=none");
	snprintf(snap, sizeof(snap), "%s/snap", dir); /* the top moves to snap/disk0.live.ovl */
	vm_snapshot(&a, snap);
	vm_seed(&a, 6, "round=2 found=5");

	snprintf(s1, sizeof(s1), "%s/sus1", dir);
	snprintf(body, sizeof(body), "{\"dir\": \"%s\", \"type\": \"suspend\"}", s1);
	cr_assert_eq(harness_api(a.sock, "PUT", "/vm/snapshot", body, reply, sizeof(reply)), 200,
		     "%s", reply);
	cr_assert_eq(harness_api(a.sock, "PUT", "/vm/actions", "{\"action\": \"stop\"}", reply,
				 sizeof(reply)),
		     204, "%s", reply);
	harness_proc_wait(&a.p, 30000); /* a stop on request: its own exit status */
	close(a.fd);
	a.fd = -1;

	vm_start(&r, "r", args);
	harness_wait_running(r.sock, 10000);
	/* the guest goes on where it was: its last round, reading the suspended disk */
	vm_finish(&r, 7, "readonly=0 found=6");
	snprintf(s2, sizeof(s2), "%s/snap/disk0.live.ovl", dir);
	check_top(s2, 7);
	check_top(aovl, 5);
}
