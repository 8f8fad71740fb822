// SPDX-License-Identifier: MIT
/*
 * Clones: a restored VM with a new identity (--net id=..., --vsock,
 * --serial on --restore), the VM generation ID a clone's guest sees change,
 * and PUT /vm/clone starting many clones of a running VM that share its
 * memory. Every bad request and bad override is refused with one line.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_CLONES 128

static char *const dir = harness_dir;
/* Clones are the spawner's children, not ours: teardown kills what a failed test left. */
static pid_t clone_pids[MAX_CLONES];
static int nclone_pids;
static char shm_dir[128];

static void setup(void)
{
	harness_dir_setup();
	nclone_pids = 0;
	shm_dir[0] = 0;
}

static bool pid_alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

static void kill_clones(void)
{
	for (int i = 0; i < nclone_pids; i++)
		kill(clone_pids[i], SIGTERM);
	for (int i = 0; i < nclone_pids; i++)
		for (int t = 0; t < 500 && pid_alive(clone_pids[i]); t++)
			usleep(10000);
	for (int i = 0; i < nclone_pids; i++)
		kill(clone_pids[i], SIGKILL);
	nclone_pids = 0;
}

static void teardown(void)
{
	kill_clones();
	harness_dir_teardown();
	if (shm_dir[0])
		harness_rm_rf(shm_dir);
}

TestSuite(clone, .init = setup, .fini = teardown, .timeout = 600);

/* Waits (20 s at most) until the file at path holds want and the rest of its line. */
static char *file_wait(const char *path, const char *want)
{
	char *text = NULL, *p;

	for (int i = 0; i < 2000; i++) {
		text = harness_slurp(path);
		p = strstr(text, want);
		if (p && strchr(p, '\n'))
			return text;
		usleep(10000);
	}
	cr_assert_fail("%s never held '%s'; it has:\n%s", path, want, text);
	return NULL;
}

static void send_str(int fd, const char *s)
{
	cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void snapshot_into(const char *sock, const char *snap)
{
	char body[256];
	char reply[4096];

	snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snap);
	harness_wait_running(sock, 5000);
	cr_assert_eq(harness_api(sock, "PUT", "/vm/snapshot", body, reply, sizeof(reply)), 200,
		     "%s", reply);
}

static void action(const char *sock, const char *what)
{
	char body[64];
	char reply[4096];

	snprintf(body, sizeof(body), "{\"action\": \"%s\"}", what);
	cr_assert_eq(harness_api(sock, "PUT", "/vm/actions", body, reply, sizeof(reply)), 204,
		     "%s: %s", what, reply);
}

/* Taps the VMM creates itself (and removes): needs CAP_NET_ADMIN and /dev/net/tun. */
static void require_taps(void)
{
	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK))
		cr_skip_test("needs root and /dev/net/tun to create taps");
}

/* A name unique to this test process, within IFNAMSIZ. */
static void tap_name(char *buf, size_t size, char tag)
{
	snprintf(buf, size, "bcl%c%d", tag, (int)getpid() % 1000000);
}

/* ---- identity on restore ---- */

/* A parent a and the VM restored from its snapshot, b: their files in DIR. */
struct ab_files {
	char api_sock[96], slog[96], slog2[96], s1[104], s2[104], snap[96];
};

static void ab_files(struct ab_files *f)
{
	snprintf(f->api_sock, sizeof(f->api_sock), "%s/a.api", dir);
	snprintf(f->slog, sizeof(f->slog), "%s/a.log", dir);
	snprintf(f->slog2, sizeof(f->slog2), "%s/b.log", dir);
	snprintf(f->s1, sizeof(f->s1), "file:%s", f->slog);
	snprintf(f->s2, sizeof(f->s2), "file:%s", f->slog2);
	snprintf(f->snap, sizeof(f->snap), "%s/snap", dir);
}

/*
 * The parent (a NIC with an id, one without, vsock) is snapshotted and
 * ends; the restored VM gets other taps, a MAC of our choosing, another
 * CID and socket, its own serial file: the guest sees the new MAC (with a
 * configuration interrupt) and a TRANSPORT_RESET, after which it reads
 * the new CID.
 */
Test(clone, restore_with_new_identity)
{
	char tapa[16], tapb[16], tapc[16], tapd[16], neta[64], netb[64], netc[96], netd[64];
	char vs[128], vs2[128];
	struct ab_files f;
	struct harness_proc a, b;

	require_taps();
	tap_name(tapa, sizeof(tapa), 'a');
	tap_name(tapb, sizeof(tapb), 'b');
	tap_name(tapc, sizeof(tapc), 'c');
	tap_name(tapd, sizeof(tapd), 'd');
	snprintf(neta, sizeof(neta), "tap=%s,id=eth0", tapa);
	snprintf(netb, sizeof(netb), "tap=%s", tapb);
	snprintf(netc, sizeof(netc), "id=eth0,tap=%s,mac=02:00:00:00:00:2a", tapc);
	snprintf(netd, sizeof(netd), "id=net1,tap=%s", tapd);
	snprintf(vs, sizeof(vs), "cid=7,uds=%s/a.vsock", dir);
	snprintf(vs2, sizeof(vs2), "cid=1234,uds=%s/b.vsock", dir);
	ab_files(&f);
	{
		const char *args[] = {"--kernel",   harness_guest("elf"),
				      "--memory",   "64M",
				      "--cmdline",  "test=identity identity_ms=6000",
				      "--net",	    neta,
				      "--net",	    netb,
				      "--vsock",    vs,
				      "--serial",   f.s1,
				      "--api-sock", f.api_sock,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	file_wait(f.slog, "result=ready mac=");
	snapshot_into(f.api_sock, f.snap);
	/* Side by side with the parent: the guest's clock runs on from the snapshot. */
	{
		const char *args[] = {"--restore", f.snap, "--serial", f.s2, "--net", netc,
				      "--net",	   netd,   "--vsock",  vs2,  NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	cr_assert_eq(harness_proc_wait(&a, 30000), 0, "stderr:\n%s", harness_slurp(a.err));
	cr_assert(strstr(harness_slurp(f.slog), "result=pass changes=0"), "%s",
		  harness_slurp(f.slog));
	cr_assert_eq(harness_proc_wait(&b, 30000), 0, "stderr:\n%s", harness_slurp(b.err));
	cr_assert(strstr(harness_slurp(f.slog2), "result=changed mac=02:00:00:00:00:2a cid=1234"),
		  "%s", harness_slurp(f.slog2));
	cr_assert(strstr(harness_slurp(f.slog2), "resets=1"), "%s", harness_slurp(f.slog2));
	cr_assert(!strstr(harness_slurp(f.slog2), "cfg_irqs=0"), "no configuration interrupt: %s",
		  harness_slurp(f.slog2));
	/* The new MAC and the reset may be seen together or one after the other. */
	cr_assert(strstr(harness_slurp(f.slog2), "result=pass changes=1") ||
			  strstr(harness_slurp(f.slog2), "result=pass changes=2"),
		  "%s", harness_slurp(f.slog2));
	/* A NIC's queue count is the machine's: a restore cannot change it. */
	{
		const char *args[] = {"--restore", f.snap, "--net", "id=eth0,tap=x1,queues=2",
				      NULL};

		harness_proc_start(&b, dir, "c", args);
		cr_assert_eq(harness_proc_wait(&b, 30000), 1);
		cr_assert(strstr(harness_slurp(b.err), "a restore cannot change it"), "%s",
			  harness_slurp(b.err));
	}
}

/* Every override --restore refuses: one line on stderr, exit status 1, nothing runs. */
Test(clone, restore_overrides_refused)
{
	static const struct {
		const char *opt, *val, *want;
	} cases[] = {
		{"--net", "id=eth9,tap=x1", "the snapshot has no network device 'eth9'"},
		{"--net", "tap=x1", "id= names the recorded network device"},
		{"--net", "id=net0,tap=x1", "the snapshot has no network device 'net0'"},
		{"--console-virtio", "file:/dev/null", "the snapshot has no virtio console"},
		{"--ne", "id=net0,tap=x1", "write --net, --vsock and --console-virtio out in full"},
		{"--cpus", "2", "--cpus cannot be combined with --restore"},
	};
	struct ab_files f;
	struct harness_proc a;

	ab_files(&f);
	{
		const char *args[] = {"--kernel",   harness_guest("elf"), "--memory", "64M",
				      "--cmdline",  "test=serial-echo",	  "--serial", f.s1,
				      "--api-sock", f.api_sock,		  NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	snapshot_into(f.api_sock, f.snap);
	action(f.api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&a, 30000), 4);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = {"--restore",  f.snap,	  "--serial", f.s1,
				      cases[i].opt, cases[i].val, NULL};
		struct harness_proc b;
		char *err;
		int st;

		harness_proc_start(&b, dir, "b", args);
		st = harness_proc_wait(&b, 30000);
		err = harness_slurp(b.err);
		cr_assert(st == 1 || st == 2, "%s %s: exit %d", cases[i].opt, cases[i].val, st);
		cr_assert(strstr(err, cases[i].want), "%s %s: %s", cases[i].opt, cases[i].val, err);
		cr_assert_eq(harness_count(err, "\n"), 1, "one line: %s", err);
	}
	/* A vsock override on a snapshot without vsock (the parent had none). */
	{
		const char *args[] = {"--restore", f.snap, "--vsock", "cid=9,uds=/tmp/x.vsock",
				      NULL};
		struct harness_proc b;

		harness_proc_start(&b, dir, "b", args);
		cr_assert_eq(harness_proc_wait(&b, 30000), 1);
		cr_assert(strstr(harness_slurp(b.err), "the snapshot has no vsock device"), "%s",
			  harness_slurp(b.err));
	}
}

/* ---- VM generation ID ---- */

static void guid_of(const char *text, const char *result, char out[40])
{
	char want[64];
	const char *p;

	snprintf(want, sizeof(want), "name=vmgenid result=%s", result);
	p = strstr(text, want);
	cr_assert_not_null(p, "no '%s' in:\n%s", want, text);
	p = strstr(p, "guid=");
	cr_assert_not_null(p);
	cr_assert_eq(sscanf(p, "guid=%32[0-9a-f]", out), 1);
	cr_assert_eq(strlen(out), 32, "%s", out);
}

/*
 * The guest finds the GUID through the DSDT (in e820-reserved memory) and
 * prints it. Pause and resume, and a snapshot, leave the parent's alone; a
 * VM restored from the snapshot gets a new one, announced by the GPE.
 */
Test(clone, vmgenid_changes_on_restore_only)
{
	char g1[40], g2[40];
	struct ab_files f;
	struct harness_proc a, b;
	char *text;

	ab_files(&f);
	{
		const char *args[] = {"--kernel",   harness_guest("elf"),
				      "--memory",   "64M",
				      "--cmdline",  "test=vmgenid vmgenid_ms=6000",
				      "--serial",   f.s1,
				      "--api-sock", f.api_sock,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	text = file_wait(f.slog, "result=ready");
	cr_assert(strstr(text, "addr=0xdf000 e820=reserved"), "%s", text);
	guid_of(text, "ready", g1);
	harness_wait_running(f.api_sock, 5000);
	action(f.api_sock, "pause");
	usleep(100000);
	action(f.api_sock, "resume");
	snapshot_into(f.api_sock, f.snap);
	{
		const char *args[] = {"--restore", f.snap, "--serial", f.s2, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	cr_assert_eq(harness_proc_wait(&a, 30000), 0, "stderr:\n%s", harness_slurp(a.err));
	text = harness_slurp(f.slog);
	cr_assert(strstr(text, "name=vmgenid result=pass changes=0"), "parent's changed:\n%s",
		  text);
	cr_assert_eq(harness_proc_wait(&b, 30000), 0, "stderr:\n%s", harness_slurp(b.err));
	text = harness_slurp(f.slog2);
	guid_of(text, "changed", g2);
	cr_assert_str_neq(g1, g2);
	cr_assert(strstr(text, "gpe=1"), "no GPE with the change:\n%s", text);
	cr_assert(strstr(text, "name=vmgenid result=pass changes=1"), "%s", text);
}

/* ---- PUT /vm/clone ---- */

/* The pids and directory of a PUT /vm/clone answer; the pids go on the kill list. */
static int clone_reply(const char *reply, pid_t *pids, int max, char *d, size_t dsize)
{
	const char *p = reply;
	int n = 0;

	cr_assert_eq(sscanf(reply, "{\"dir\":\"%127[^\"]\"", d), 1, "%s", reply);
	(void)dsize;
	while ((p = strstr(p, "\"pid\":")) && n < max) {
		pids[n] = (pid_t)atoi(p + 6);
		clone_pids[nclone_pids++] = pids[n];
		n++;
		p += 6;
	}
	return n;
}

/* Private_Dirty and Pss of the whole process (kB), from smaps_rollup. */
static void rollup_kb(pid_t pid, long *priv, long *pss)
{
	char path[64], line[256];
	FILE *f;

	*priv = *pss = -1;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "Private_Dirty: %ld kB", priv);
		sscanf(line, "Pss: %ld kB", pss);
	}
	fclose(f);
}

/* Private_Dirty (kB) of pid's mappings of path: the guest memory it made its own. */
static long mapping_private_kb(pid_t pid, const char *path)
{
	char file[64], line[512];
	bool in = false;
	long total = 0, kb;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/smaps", (int)pid);
	f = fopen(file, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = strstr(line, path) != NULL;
		else if (in && sscanf(line, "Private_Dirty: %ld kB", &kb) == 1)
			total += kb;
	}
	fclose(f);
	return total;
}

/* One echo round on clone i's serial socket. */
static void clone_echo(const char *d, int i)
{
	char path[192], line[64], want[64], buf[4096];
	size_t len = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/clone-%d/serial.sock", d, i);
	fd = harness_unix_connect(path, 20000);
	cr_assert_geq(fd, 0, "clone %d: no serial socket %s", i, path);
	snprintf(line, sizeof(line), "clone number %d\n", i);
	snprintf(want, sizeof(want), "ECHO: clone number %d", i);
	send_str(fd, line);
	cr_assert(harness_read_until(fd, buf, sizeof(buf), &len, want, 20000),
		  "clone %d did not answer: %s", i, buf);
	close(fd);
}

/* A serial-echo guest (DIR/a.log) with the API on api_sock, plus extra (NULL-terminated). */
static void echo_parent(struct harness_proc *a, const char *api_sock, const char *const *extra)
{
	char s1[104];
	const char *args[24] = {
		"--kernel",	    harness_guest("elf"), "--memory", "64M",	    "--cmdline",
		"test=serial-echo", "--serial",		  s1,	      "--api-sock", api_sock};
	int n = 10;

	snprintf(s1, sizeof(s1), "file:%s/a.log", dir);
	for (int i = 0; extra && extra[i]; i++) {
		cr_assert_lt(n, 23);
		args[n++] = extra[i];
	}
	harness_proc_start(a, dir, "a", args);
	harness_wait_running(api_sock, 5000);
}

/*
 * A whole clone process's own memory: its guest pages plus the VMM's heap,
 * stacks and KVM's structures. AddressSanitizer's shadow and quarantine add
 * about 4 MiB to every process, so sanitizer builds get a looser bound
 * (the guest-memory bound above them stays the same).
 */
#if defined(__SANITIZE_ADDRESS__)
#define CLONE_PRIVATE_KB (12 * 1024)
#else
#define CLONE_PRIVATE_KB (4 * 1024)
#endif

/*
 * 100 clones of a running 64 MiB guest: each answers on its own serial
 * socket, and together they hold little memory of their own: the guest
 * memory file on /dev/shm is mapped copy-on-write by all of them.
 */
Test(clone, hundred_clones_share_memory)
{
	static pid_t pids[MAX_CLONES];
	char api_sock[96], d[128], mem[160];
	static char reply[65536]; /* the replies of 100 clones */
	long sum_map = 0, sum_priv = 0, sum_pss = 0, max_map = 0;
	struct harness_proc a;
	int n;

	snprintf(api_sock, sizeof(api_sock), "%s/a.api", dir);
	echo_parent(&a, api_sock, NULL);
	cr_assert_eq(
		harness_api(api_sock, "PUT", "/vm/clone", "{\"count\": 100}", reply, sizeof(reply)),
		200, "%s", reply);
	n = clone_reply(reply, pids, MAX_CLONES, d, sizeof(d));
	snprintf(shm_dir, sizeof(shm_dir), "%s", d);
	cr_assert_eq(n, 100, "%s", reply);
	cr_assert(!strncmp(d, "/dev/shm/", 9), "the default is in memory: %s", d);
	cr_assert(strstr(reply, "\"timings_ms\":{\"pause\":"), "%s", reply);
	cr_log_info("PUT /vm/clone count=100: %s", strstr(reply, "\"timings_ms\""));
	for (int i = 0; i < n; i++)
		clone_echo(d, i);
	snprintf(mem, sizeof(mem), "%s/memory", d);
	for (int i = 0; i < n; i++) {
		long m = mapping_private_kb(pids[i], mem), priv, pss;

		rollup_kb(pids[i], &priv, &pss);
		sum_map += m;
		sum_priv += priv;
		sum_pss += pss;
		max_map = m > max_map ? m : max_map;
	}
	printf("# 100 clones of a 64 MiB guest: guest memory made private %ld kB in all "
	       "(max %ld kB per clone); whole processes: Private_Dirty %ld kB, Pss %ld kB "
	       "(%ld kB per clone)\n",
	       sum_map, max_map, sum_priv, sum_pss, sum_pss / n);
	cr_assert_lt(max_map, 4 * 1024, "a clone copied %ld kB of guest memory", max_map);
	cr_assert_lt(sum_priv, 100L * CLONE_PRIVATE_KB, "the clones hold %ld kB of their own",
		     sum_priv);
	/* The parent runs on. */
	action(api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&a, 30000), 4, "%s", harness_slurp(a.err));
	kill_clones();
	for (int i = 0; i < n; i++) {
		char log[192], *text;

		snprintf(log, sizeof(log), "%s/clone-%d/vmm.log", d, i);
		text = harness_slurp(log);
		cr_assert(!strstr(text, "seccomp") && !strstr(text, "Sanitizer") &&
				  !strstr(text, "error"),
			  "clone %d: %s", i, text);
	}
}

/*
 * The echo parent with disk (API on api_sock), cloned twice into
 * DIR/clones (more: further fields of the request, or ""); both clones
 * echo. Their pids in pids, their directory in d.
 */
static void clone_twice(struct harness_proc *a, const char *api_sock, const char *disk,
			const char *more, pid_t pids[2], char *d, size_t dsize)
{
	char body[384], reply[4096];

	echo_parent(a, api_sock, (const char *const[]){"--disk", disk, NULL});
	snprintf(body, sizeof(body), "{\"count\": 2, \"dir\": \"%s/clones\"%s}", dir, more);
	cr_assert_eq(harness_api(api_sock, "PUT", "/vm/clone", body, reply, sizeof(reply)), 200,
		     "%s", reply);
	cr_assert_eq(clone_reply(reply, pids, 2, d, dsize), 2, "%s", reply);
	clone_echo(d, 0);
	clone_echo(d, 1);
}

/* A read-only disk is shared by clones as it is; a clone's files are in the dir asked for. */
Test(clone, read_only_disk_and_given_dir)
{
	char api_sock[96], disk[160], d[128], cd[128], *img;
	pid_t pids[2];
	struct harness_proc a;

	img = harness_temp_file(1 << 20, 7, NULL);
	snprintf(disk, sizeof(disk), "path=%s,readonly=on", img);
	snprintf(api_sock, sizeof(api_sock), "%s/a.api", dir);
	clone_twice(&a, api_sock, disk, ", \"serial\": \"unix\"", pids, d, sizeof(d));
	snprintf(cd, sizeof(cd), "%s/clones", dir);
	cr_assert_str_eq(d, cd);
	action(api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&a, 30000), 4);
	kill_clones();
	unlink(img);
	free(img);
}

/* True when path starts with the overlay magic. */
static bool is_overlay(const char *path)
{
	char magic[8] = {0};
	int fd = open(path, O_RDONLY);
	bool ok = fd >= 0 && read(fd, magic, sizeof(magic)) == sizeof(magic) &&
		  !memcmp(magic, "BSHNOVL", 8);

	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * A writable disk: the snapshot freezes the image, the parent carries on in
 * DIR/disk0.live.ovl and clone i writes into DIR/clone-i/disk0.ovl, which its
 * command line names; the image itself is never written again.
 */
Test(clone, writable_disk_gets_overlays)
{
	char api_sock[96], disk[160], d[128], path[256], *img;
	char cmdline[4096];
	pid_t pids[2];
	struct harness_proc a;

	img = harness_temp_file(1 << 20, 11, NULL);
	snprintf(disk, sizeof(disk), "path=%s,id=data", img);
	snprintf(api_sock, sizeof(api_sock), "%s/a.api", dir);
	clone_twice(&a, api_sock, disk, "", pids, d, sizeof(d));
	snprintf(path, sizeof(path), "%s/disk0.live.ovl", d);
	cr_assert(is_overlay(path), "the parent's overlay %s", path);
	for (int i = 0; i < 2; i++) {
		int fd;
		ssize_t n;

		snprintf(path, sizeof(path), "%s/clone-%d/disk0.ovl", d, i);
		cr_assert(is_overlay(path), "clone %d's overlay %s", i, path);
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pids[i]);
		fd = open(path, O_RDONLY);
		n = fd >= 0 ? read(fd, cmdline, sizeof(cmdline) - 1) : -1;
		if (fd >= 0)
			close(fd);
		cr_assert_gt(n, 0);
		for (ssize_t k = 0; k < n; k++)
			cmdline[k] = cmdline[k] ? cmdline[k] : ' ';
		cmdline[n] = 0;
		snprintf(path, sizeof(path), "--overlay 0=%s/clone-%d/disk0.ovl", d, i);
		cr_assert(strstr(cmdline, path), "clone %d: %s", i, cmdline);
	}
	action(api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&a, 30000), 4);
	kill_clones();
	unlink(img);
	free(img);
}

/* Every bad request: a 400 (or 409) naming the problem, and nothing started or created. */
Test(clone, bad_requests)
{
	char api_sock[96], body[512], notempty[128];
	char reply[4096];
	struct harness_proc a;
	struct {
		const char *body;
		int status;
		const char *want;
	} cases[] = {
		{"{}", 400, "\"field\":\"count\""},
		{"{\"count\": 0}", 400, "\"field\":\"count\""},
		{"{\"count\": 1025}", 400, "\"field\":\"count\""},
		{"{\"count\": \"2\"}", 400, "\"field\":\"count\""},
		{"{\"count\": 1, \"now\": 1}", 400, "\"field\":\"now\""},
		{"{\"count\": 1, \"dir\": \"relative\"}", 400, "\"field\":\"dir\""},
		{"{\"count\": 1, \"dir\": 5}", 400, "\"field\":\"dir\""},
		{"{\"count\": 1, \"dir\": \"/tmp/a,b\"}", 400, "\"field\":\"dir\""},
		{"{\"count\": 1, \"dir\": \"/proc/no/such/dir\"}", 400, "\"field\":\"dir\""},
		{"{\"count\": 1, \"serial\": \"tcp\"}", 400, "\"field\":\"serial\""},
		{"{\"count\": 1, \"cid_base\": 10}", 400, "\"field\":\"cid_base\""},
		{"{\"count\": 1, \"cid_base\": 2}", 400, "\"field\":\"cid_base\""},
		{"{\"count\": 1, \"nets\": [[{\"tap\": \"t0\"}]]}", 400, "\"field\":\"nets\""},
		{"{\"count\": 2, \"nets\": [[]]}", 400, "\"field\":\"nets\""},
		{"{\"count\": 1, \"nets\": [[{\"tap\": \"a,b\"}]]}", 400, "\"field\":\"nets\""},
		{"{\"count\": 1, \"nets\": [[{\"tap\": \"t0\", \"mac\": \"01:00:00:00:00:01\"}]]}",
		 400, "\"field\":\"nets\""},
		{"{\"count\": 1, \"nets\": [[{\"tap\": \"t0\", \"x\": 1}]]}", 400,
		 "\"field\":\"nets\""},
		{NULL, 400, "\"field\":\"dir\""}, /* a directory that is not empty */
	};

	snprintf(api_sock, sizeof(api_sock), "%s/a.api", dir);
	echo_parent(&a, api_sock, NULL);
	snprintf(notempty, sizeof(notempty), "%s/full", dir);
	mkdir(notempty, 0700);
	snprintf(body, sizeof(body), "%s/full/x", dir);
	close(open(body, O_WRONLY | O_CREAT, 0600));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *b = cases[i].body;
		int st;

		if (!b) {
			snprintf(body, sizeof(body), "{\"count\": 1, \"dir\": \"%s\"}", notempty);
			b = body;
		}
		st = harness_api(api_sock, "PUT", "/vm/clone", b, reply, sizeof(reply));
		cr_assert_eq(st, cases[i].status, "%s: %d %s", b, st, reply);
		cr_assert(strstr(reply, cases[i].want), "%s: %s", b, reply);
	}
	cr_assert_eq(harness_count(harness_slurp(a.err), "cloned into"), 0);
	harness_api(api_sock, "GET", "/vm", NULL, reply, sizeof(reply));
	cr_assert(strstr(reply, "\"state\":\"running\""), "%s", reply);
	action(api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&a, 30000), 4);
}

/* The identity a VM with vsock, a NIC and a writable disk needs from a clone request. */
Test(clone, bad_requests_for_devices)
{
	char api_sock[96], vs[128], net[64], tap[16], body[512], disk[160], *img;
	char reply[4096];
	struct harness_proc a, b2;
	struct {
		const char *body;
		int status;
		const char *want;
	} cases[] = {
		{"{\"count\": 1, \"nets\": [[{\"tap\": \"zz0\"}]]}", 400, "\"field\":\"cid_base\""},
		{"{\"count\": 3, \"cid_base\": 5, \"nets\": [[{\"tap\": \"a0\"}], [{\"tap\": "
		 "\"a1\"}], [{\"tap\": \"a2\"}]]}",
		 400, "this VM's own CID"},
		{NULL, 200, "\"cid\":4294967294"}, /* a tap of our own: it is created */
		{"{\"count\": 2, \"cid_base\": 4294967294, \"nets\": [[{\"tap\": \"a0\"}], "
		 "[{\"tap\": \"a1\"}]]}",
		 400, "\"field\":\"cid_base\""},
		{"{\"count\": 1, \"cid_base\": 100}", 400, "\"field\":\"nets\""},
		{"{\"count\": 2, \"cid_base\": 100, \"nets\": [[{\"tap\": \"a0\"}], [{\"tap\": "
		 "\"a0\"}]]}",
		 400, "given twice"},
		{"{\"count\": 1, \"cid_base\": 100, \"nets\": [[{\"tap\": \"a0\"}, {\"tap\": "
		 "\"a1\"}]]}",
		 400, "\"field\":\"nets\""},
	};

	require_taps();
	tap_name(tap, sizeof(tap), 'p');
	snprintf(net, sizeof(net), "tap=%s", tap);
	snprintf(vs, sizeof(vs), "cid=6,uds=%s/a.vsock", dir);
	snprintf(api_sock, sizeof(api_sock), "%s/a.api", dir);
	echo_parent(&a, api_sock, (const char *const[]){"--vsock", vs, "--net", net, NULL});
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *b = cases[i].body;
		char ctap[16];
		int st;

		if (!b) {
			tap_name(ctap, sizeof(ctap), 'q');
			snprintf(body, sizeof(body),
				 "{\"count\": 1, \"cid_base\": 4294967294, \"nets\": "
				 "[[{\"tap\": \"%s\"}]]}",
				 ctap);
			b = body;
		}
		st = harness_api(api_sock, "PUT", "/vm/clone", b, reply, sizeof(reply));
		cr_assert_eq(st, cases[i].status, "%s: %d %s", b, st, reply);
		cr_assert(strstr(reply, cases[i].want), "%s: %s", b, reply);
		if (st == 200) {
			pid_t pid;
			char d[128];

			clone_reply(reply, &pid, 1, d, sizeof(d));
			snprintf(shm_dir, sizeof(shm_dir), "%s", d);
			cr_assert(strstr(reply, "\"mac\":\""), "%s", reply);
			kill_clones();
		}
	}
	action(api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&a, 30000), 4);

	/* A writable disk: its overlays go into dir, so the /dev/shm default is refused. */
	img = harness_temp_file(1 << 20, 9, NULL);
	snprintf(disk, sizeof(disk), "path=%s", img);
	echo_parent(&b2, api_sock, (const char *const[]){"--disk", disk, NULL});
	snprintf(body, sizeof(body), "{\"count\": 1}");
	cr_assert_eq(harness_api(api_sock, "PUT", "/vm/clone", body, reply, sizeof(reply)), 400,
		     "%s", reply);
	cr_assert(strstr(reply, "\"field\":\"dir\"") && strstr(reply, "writable"), "%s", reply);
	action(api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&b2, 30000), 4);
	unlink(img);
	free(img);
}

/*
 * A virtio console restored onto a new backend: the guest's hvc0 carries on
 * there (it counts the line told before the snapshot), and the recorded
 * socket is not created again.
 */
Test(clone, restore_with_new_virtio_console)
{
	char hvc[96], hvc_arg[104], hvc2[96], hvc2_arg[104], buf[4096];
	struct ab_files f;
	struct harness_proc a, b;
	size_t len = 0;
	int fd;

	snprintf(hvc, sizeof(hvc), "%s/hvc0", dir);
	snprintf(hvc_arg, sizeof(hvc_arg), "unix:%s", hvc);
	snprintf(hvc2, sizeof(hvc2), "%s/hvc0-clone", dir);
	snprintf(hvc2_arg, sizeof(hvc2_arg), "unix:%s", hvc2);
	ab_files(&f);
	{
		const char *args[] = {"--kernel",
				      harness_guest("elf"),
				      "--memory",
				      "64M",
				      "--cmdline",
				      "test=virtio-console",
				      "--serial",
				      f.s1,
				      "--console-virtio",
				      hvc_arg,
				      "--api-sock",
				      f.api_sock,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	fd = harness_unix_connect(hvc, 5000);
	cr_assert_geq(fd, 0);
	cr_assert(harness_read_until(fd, buf, sizeof(buf), &len, "hvc0 ready", 10000), "%s", buf);
	send_str(fd, "first\n");
	cr_assert(harness_read_until(fd, buf, sizeof(buf), &len, "ECHO: FIRST", 10000), "%s", buf);
	close(fd);
	snapshot_into(f.api_sock, f.snap);
	action(f.api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&a, 30000), 4);
	unlink(hvc);
	{
		const char *args[] = {"--restore", f.snap, "--console-virtio", hvc2_arg, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	fd = harness_unix_connect(hvc2, 5000);
	cr_assert_geq(fd, 0, "no console at %s: %s", hvc2, harness_slurp(b.err));
	cr_assert(access(hvc, F_OK) != 0, "the recorded console socket came back");
	len = 0;
	send_str(fd, "second\nquit\n");
	cr_assert(harness_read_until(fd, buf, sizeof(buf), &len, "ECHO: SECOND", 10000), "%s", buf);
	close(fd);
	cr_assert_eq(harness_proc_wait(&b, 30000), 0, "stderr:\n%s", harness_slurp(b.err));
	cr_assert(strstr(harness_slurp(f.slog), "name=virtio-console result=pass lines=2"), "%s",
		  harness_slurp(f.slog));
}

/*
 * A NIC replaced without mac= gets a new random MAC; a driver that took
 * VIRTIO_NET_F_GUEST_ANNOUNCE is asked to announce it (VIRTIO_NET_S_ANNOUNCE)
 * and its ack clears the request.
 */
Test(clone, restore_new_mac_is_announced)
{
	char tapa[16], tapb[16], neta[64], netb[64], mac1[32], mac2[32];
	struct ab_files f;
	struct harness_proc a, b;
	const char *p;

	require_taps();
	tap_name(tapa, sizeof(tapa), 'e');
	tap_name(tapb, sizeof(tapb), 'f');
	snprintf(neta, sizeof(neta), "tap=%s", tapa);
	snprintf(netb, sizeof(netb), "id=net0,tap=%s", tapb);
	ab_files(&f);
	{
		const char *args[] = {
			"--kernel",   harness_guest("elf"),
			"--memory",   "64M",
			"--cmdline",  "test=identity identity_ms=6000 identity_announce=1",
			"--net",      neta,
			"--serial",   f.s1,
			"--api-sock", f.api_sock,
			NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	p = strstr(file_wait(f.slog, "result=ready mac="), "mac=");
	cr_assert_eq(sscanf(p, "mac=%17s", mac1), 1);
	snapshot_into(f.api_sock, f.snap);
	{
		const char *args[] = {"--restore", f.snap, "--serial", f.s2, "--net", netb, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	cr_assert_eq(harness_proc_wait(&a, 30000), 0, "stderr:\n%s", harness_slurp(a.err));
	cr_assert_eq(harness_proc_wait(&b, 30000), 0, "stderr:\n%s", harness_slurp(b.err));
	p = strstr(harness_slurp(f.slog2), "result=changed mac=");
	cr_assert_not_null(p, "%s", harness_slurp(f.slog2));
	cr_assert_eq(sscanf(p, "result=changed mac=%17s", mac2), 1);
	cr_assert_str_neq(mac1, mac2);
	cr_assert(!strncmp(mac2, "52:54:00:", 9), "%s", mac2);
	cr_assert(strstr(p, "announce=acked"), "%s", p);
}

/* Not started yet: 409. Paused: cloned, and it stays paused. */
Test(clone, not_started_refused_paused_stays_paused)
{
	char api_sock[96], d[128];
	char reply[4096];
	struct harness_proc a, b;
	pid_t pid;

	snprintf(api_sock, sizeof(api_sock), "%s/w.api", dir);
	{
		const char *args[] = {"--api-sock", api_sock, NULL};

		harness_proc_start(&a, dir, "w", args);
	}
	cr_assert_eq(
		harness_api(api_sock, "PUT", "/vm/clone", "{\"count\": 1}", reply, sizeof(reply)),
		409, "%s", reply);
	cr_assert(strstr(reply, "not been started"), "%s", reply);
	kill(a.pid, SIGTERM);
	cr_assert_eq(harness_proc_wait(&a, 30000), 4);

	snprintf(api_sock, sizeof(api_sock), "%s/a.api", dir);
	echo_parent(&b, api_sock, NULL);
	action(api_sock, "pause");
	cr_assert_eq(
		harness_api(api_sock, "PUT", "/vm/clone", "{\"count\": 1}", reply, sizeof(reply)),
		200, "%s", reply);
	cr_assert_eq(clone_reply(reply, &pid, 1, d, sizeof(d)), 1, "%s", reply);
	snprintf(shm_dir, sizeof(shm_dir), "%s", d);
	clone_echo(d, 0);
	harness_api(api_sock, "GET", "/vm", NULL, reply, sizeof(reply));
	cr_assert(strstr(reply, "\"state\":\"paused\""), "%s", reply);
	action(api_sock, "stop");
	cr_assert_eq(harness_proc_wait(&b, 30000), 4);
	kill_clones();
}

/* A guest reboot is the same VM, the same generation: the GUID stays. */
Test(clone, vmgenid_survives_reboot)
{
	char slog[96], s1[104], g1[40], g2[40];
	const char *second;
	struct harness_proc a;
	char *text;

	snprintf(slog, sizeof(slog), "%s/a.log", dir);
	snprintf(s1, sizeof(s1), "file:%s", slog);
	{
		const char *args[] = {"--kernel",    harness_guest("elf"),
				      "--memory",    "64M",
				      "--on-reboot", "restart",
				      "--cmdline",   "test=vmgenid vmgenid_ms=300 vmgenid_reboot=1",
				      "--serial",    s1,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	cr_assert_eq(harness_proc_wait(&a, 30000), 0, "stderr:\n%s", harness_slurp(a.err));
	text = harness_slurp(slog);
	cr_assert_eq(harness_count(text, "name=vmgenid result=ready"), 2, "%s", text);
	guid_of(text, "ready", g1);
	second = strstr(strstr(text, "result=ready") + 1, "name=vmgenid result=ready");
	guid_of(second, "ready", g2);
	cr_assert_str_eq(g1, g2, "the reboot changed the generation ID");
	cr_assert(strstr(text, "result=pass changes=0"), "%s", text);
}
