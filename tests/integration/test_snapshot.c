// SPDX-License-Identifier: MIT
/*
 * Snapshots: a VM snapshotted through the API (PUT /vm/snapshot) and
 * restored in a fresh process (--restore DIR) carries on where it was: its
 * memory, CPU and device state come back, and the guest cannot tell.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static char *const dir = harness_dir;

TestSuite(snapshot, .init = harness_dir_setup, .fini = harness_dir_teardown);

/* Connects to a socket the VMM is about to create. */
static int sock_wait(const char *path)
{
	int fd = harness_unix_connect(path, 5000);

	cr_assert_geq(fd, 0, "%s never accepted a connection", path);
	return fd;
}

static void send_str(int fd, const char *s)
{
	cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Snapshots the VM behind sock into the directory snap. */
static void snapshot_into(const char *sock, const char *snap)
{
	char body[256], reply[1024];

	snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snap);
	harness_wait_running(sock, 5000);
	cr_assert_eq(harness_api(sock, "PUT", "/vm/snapshot", body, reply, sizeof(reply)), 200,
		     "%s", reply);
	cr_assert(strstr(reply, "\"total_ms\":"), "%s", reply);
}

/* Stops the VM behind sock through the API: exit status 4. */
static void stop_vm(struct harness_proc *p, const char *sock)
{
	char reply[512];

	cr_assert_eq(harness_api(sock, "PUT", "/vm/actions", "{\"action\": \"stop\"}", reply,
				 sizeof(reply)),
		     204, "%s", reply);
	cr_assert_eq(harness_proc_wait(p, 20000), 4, "stderr:\n%s", harness_proc_stderr(p));
}

/* Snapshots the VM behind sock into DIR/snap, then stops it. */
static void snapshot_and_stop(struct harness_proc *p, const char *sock, char *snap, size_t size)
{
	snprintf(snap, size, "%s/snap", dir);
	snapshot_into(sock, snap);
	stop_vm(p, sock);
}

/*
 * The parent of the echo tests: a guest echoing serial lines on DIR/a.con
 * (API on DIR/a.api) is told one line, then snapshotted into DIR/snap and
 * stopped. A guest restored from it counts that line too.
 */
static void echo_parent_snapshot(const char *memory, const char *line, char *snap, size_t size)
{
	char con[96], sock[96], serial[104], echo[128];
	struct harness_proc a;
	int fd;

	snprintf(con, sizeof(con), "%s/a.con", dir);
	snprintf(sock, sizeof(sock), "%s/a.api", dir);
	snprintf(serial, sizeof(serial), "unix:%s", con);
	{
		const char *args[] = {"--kernel",   harness_guest("elf"),
				      "--cmdline",  "test=serial-echo",
				      "--cpus",	    "2",
				      "--memory",   memory,
				      "--serial",   serial,
				      "--api-sock", sock,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	fd = sock_wait(con);
	harness_wait_text(fd, "name=serial-echo result=ready", 10000);
	snprintf(echo, sizeof(echo), "%s\n", line);
	send_str(fd, echo);
	snprintf(echo, sizeof(echo), "ECHO: %s", line);
	harness_wait_text(fd, echo, 10000);
	close(fd);
	snapshot_and_stop(&a, sock, snap, size);
}

/*
 * The guest echoes serial lines and counts them. One line before the
 * snapshot, one after the restore: the count the restored guest reports
 * (2) is the proof that its memory and CPU state came back.
 */
Test(snapshot, serial_session_carries_on)
{
	char con_b[96], serial_b[104], snap[96];
	struct harness_proc b;
	int fd;

	echo_parent_snapshot("64M", "before", snap, sizeof(snap));
	snprintf(con_b, sizeof(con_b), "%s/b.con", dir);
	snprintf(serial_b, sizeof(serial_b), "unix:%s", con_b);
	{
		const char *args[] = {"--restore", snap, "--serial", serial_b, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	fd = sock_wait(con_b);
	send_str(fd, "after\n");
	harness_wait_text(fd, "ECHO: after", 10000);
	send_str(fd, "quit\n");
	harness_wait_text(fd, "name=serial-echo result=pass lines=2", 10000);
	close(fd);
	cr_assert_eq(harness_proc_wait(&b, 20000), 0, "stderr:\n%s", harness_proc_stderr(&b));
}

/*
 * PUT /vm/restore: a VMM started with only --api-sock (and its console)
 * becomes the snapshot's VM. Bad requests are 400s naming the field and
 * leave it waiting; once restored, a second restore is a 409.
 */
Test(snapshot, restore_through_the_api)
{
	char con_b[96], serial_b[104], sock_b[96], snap[96], body[256], reply[1024];
	struct {
		const char *body;
		const char *field;
	} bad[] = {
		{"{\"dir\": \"/nonexistent/snap\"}", "\"field\":\"dir\""},
		{"{\"dir\": 7}", "\"field\":\"dir\""},
		{"{}", "\"field\":\"dir\""},
		{NULL, "\"field\":\"bogus\""},
		{NULL, "\"field\":\"overlays\""},
		{NULL, "\"field\":\"nets\""},
	};
	struct harness_proc b;
	int fd;

	echo_parent_snapshot("64M", "before", snap, sizeof(snap));
	snprintf(con_b, sizeof(con_b), "%s/b.con", dir);
	snprintf(serial_b, sizeof(serial_b), "unix:%s", con_b);
	snprintf(sock_b, sizeof(sock_b), "%s/b.api", dir);
	{
		const char *args[] = {"--api-sock", sock_b, "--serial", serial_b, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *req = bad[i].body;

		if (i == 3)
			snprintf(body, sizeof(body), "{\"dir\": \"%s\", \"bogus\": 1}", snap);
		else if (i == 4)
			snprintf(body, sizeof(body),
				 "{\"dir\": \"%s\", \"overlays\": [{\"disk\": \"9\", \"file\": "
				 "\"%s/x.ovl\"}]}",
				 snap, dir);
		else if (i == 5)
			snprintf(body, sizeof(body),
				 "{\"dir\": \"%s\", \"nets\": [{\"id\": \"net0\", \"tap\": "
				 "\"bt0\"}]}",
				 snap);
		if (!req)
			req = body;
		cr_assert_eq(harness_api(sock_b, "PUT", "/vm/restore", req, reply, sizeof(reply)),
			     400, "%s: %s", req, reply);
		cr_assert(strstr(reply, bad[i].field), "%s: %s", req, reply);
	}
	harness_api(sock_b, "GET", "/vm", NULL, reply, sizeof(reply));
	cr_assert(!strstr(reply, "\"state\":\"running\""), "%s", reply);
	snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snap);
	cr_assert_eq(harness_api(sock_b, "PUT", "/vm/restore", body, reply, sizeof(reply)), 204,
		     "%s", reply);
	fd = sock_wait(con_b);
	send_str(fd, "after\n");
	harness_wait_text(fd, "ECHO: after", 10000);
	cr_assert_eq(harness_api(sock_b, "PUT", "/vm/restore", body, reply, sizeof(reply)), 409,
		     "%s", reply);
	send_str(fd, "quit\n");
	harness_wait_text(fd, "name=serial-echo result=pass lines=2", 10000);
	close(fd);
	cr_assert_eq(harness_proc_wait(&b, 20000), 0, "stderr:\n%s", harness_proc_stderr(&b));
}

/*
 * Console input that is already waiting when a restored VMM starts (here:
 * written into its stdin before it even runs) reaches the guest once: it
 * is held until the restore has loaded the UART, never overwritten by it.
 */
Test(snapshot, early_console_input_survives_the_restore)
{
	char snap[96], buf[8192];
	int in[2], out[2];
	size_t len = 0;
	pid_t pid;
	int status;

	echo_parent_snapshot("64M", "before", snap, sizeof(snap));
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(out), 0);
	send_str(in[1], "early\n");
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		harness_die_with_parent();
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl(harness_vmm(), harness_vmm(), "--restore", snap, "--serial", "stdio",
		      (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	cr_assert(harness_read_until(out[0], buf, sizeof(buf), &len, "ECHO: early", 10000),
		  "the line written before the restore never came back:\n%s", buf);
	send_str(in[1], "quit\n");
	cr_assert(harness_read_until(out[0], buf, sizeof(buf), &len, "result=pass lines=2", 10000),
		  "%s", buf);
	close(in[1]);
	close(out[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

/* A broken snapshot is refused with one clear line, before any guest code runs. */
Test(snapshot, broken_snapshots_are_refused)
{
	char sock[96], snap[96], path[128], serial[104];
	struct harness_proc a;
	struct vmm_result r;
	int fd;

	snprintf(sock, sizeof(sock), "%s/a.api", dir);
	snprintf(serial, sizeof(serial), "file:%s/a.out", dir);
	{
		const char *args[] = {"--kernel",   harness_guest("elf"),
				      "--cmdline",  "test=serial-echo",
				      "--memory",   "64M",
				      "--serial",   serial,
				      "--api-sock", sock,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	snapshot_and_stop(&a, sock, snap, sizeof(snap));

	/* --cpus cannot change across a restore */
	{
		const char *argv[] = {"vmm", "--restore", snap, "--cpus", "4", NULL};

		harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1},
			    &r);
		cr_assert_eq(r.status, 2, "%s", r.err);
		cr_assert(strstr(r.err, "--cpus cannot be combined with --restore"), "%s", r.err);
		harness_free(&r);
	}
	/* the memory file cut short */
	snprintf(path, sizeof(path), "%s/memory", snap);
	cr_assert_eq(truncate(path, 4096), 0);
	{
		const char *argv[] = {"vmm", "--restore", snap, NULL};

		harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1},
			    &r);
		cr_assert_eq(r.status, 1, "%s", r.err);
		cr_assert(strstr(r.err, "4096 bytes, the VM has 67108864 bytes of memory"), "%s",
			  r.err);
		cr_assert_eq(harness_count(r.err, "\n"), 1, "one line: %s", r.err);
		harness_free(&r);
	}
	/* one flipped byte in the state file */
	snprintf(path, sizeof(path), "%s/state", snap);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "X", 1, 40), 1);
	close(fd);
	{
		const char *argv[] = {"vmm", "--restore", snap, NULL};

		harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1},
			    &r);
		cr_assert_eq(r.status, 1, "%s", r.err);
		cr_assert(strstr(r.err, "is corrupted (bad CRC)"), "%s", r.err);
		harness_free(&r);
	}
	/* no snapshot there at all */
	{
		const char *argv[] = {"vmm", "--restore", "/nonexistent/snap", NULL};

		harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1},
			    &r);
		cr_assert_eq(r.status, 1, "%s", r.err);
		cr_assert(strstr(r.err, "/nonexistent/snap/state: No such file"), "%s", r.err);
		harness_free(&r);
	}
}

/*
 * The guest watches kvmclock across the snapshot, a second of downtime and
 * the restore in another process: it finishes its loop there, and its
 * clock carries on from the snapshot while the host's TSC shows the gap.
 */
Test(snapshot, guest_clock_carries_on)
{
	char sock[96], snap[96], out_a[96], out_b[96], serial_a[104], serial_b[104], val[32];
	struct harness_proc a, b;
	char *console;
	long tsc_gap, kvm_gap;
	FILE *f;

	snprintf(sock, sizeof(sock), "%s/a.api", dir);
	snprintf(out_a, sizeof(out_a), "%s/a.out", dir);
	snprintf(out_b, sizeof(out_b), "%s/b.out", dir);
	snprintf(serial_a, sizeof(serial_a), "file:%s", out_a);
	snprintf(serial_b, sizeof(serial_b), "file:%s", out_b);
	{
		const char *args[] = {"--kernel",   harness_guest("elf"),
				      "--cmdline",  "test=clock-watch watch_ms=3000",
				      "--cpus",	    "2",
				      "--memory",   "64M",
				      "--serial",   serial_a,
				      "--api-sock", sock,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	for (int i = 0; i < 500; i++) {
		char buf[256] = "";

		f = fopen(out_a, "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);

			buf[n] = 0;
			fclose(f);
		}
		if (strstr(buf, "result=ready"))
			break;
		usleep(10000);
	}
	usleep(300 * 1000);
	snapshot_and_stop(&a, sock, snap, sizeof(snap));
	sleep(1);
	{
		const char *args[] = {"--restore", snap, "--serial", serial_b, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	cr_assert_eq(harness_proc_wait(&b, 20000), 0, "the restored guest powers off; stderr:\n%s",
		     harness_proc_stderr(&b));
	console = calloc(1, 4096);
	f = fopen(out_b, "r");
	cr_assert_not_null(f);
	console[fread(console, 1, 4095, f)] = 0;
	fclose(f);
	cr_assert(harness_passed(console, "clock-watch"), "%s", console);
	cr_assert(harness_result_field(console, "clock-watch", "max_tsc_gap_us", val, sizeof(val)));
	tsc_gap = atol(val);
	cr_assert(harness_result_field(console, "clock-watch", "max_gap_us", val, sizeof(val)));
	kvm_gap = atol(val);
	cr_assert_geq(tsc_gap, 1000000, "the downtime shows in the TSC: %s", console);
	cr_assert_geq(tsc_gap - kvm_gap, 500000, "kvmclock does not jump: %s", console);
	free(console);
}

/*
 * A virtio device across the restore: the guest echoes lines on hvc0. One
 * line before, one after; the restored process recreates the console's
 * socket where the snapshot's command line put it.
 */
Test(snapshot, virtio_console_carries_on)
{
	char hvc[96], hvc_arg[104], sock[96], snap[96], serial[104];
	struct harness_proc a, b;
	int fd;

	snprintf(hvc, sizeof(hvc), "%s/hvc0", dir);
	snprintf(hvc_arg, sizeof(hvc_arg), "unix:%s", hvc);
	snprintf(sock, sizeof(sock), "%s/a.api", dir);
	snprintf(serial, sizeof(serial), "file:%s/a.out", dir);
	{
		const char *args[] = {"--kernel",
				      harness_guest("elf"),
				      "--cmdline",
				      "test=virtio-console",
				      "--memory",
				      "64M",
				      "--serial",
				      serial,
				      "--console-virtio",
				      hvc_arg,
				      "--api-sock",
				      sock,
				      NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	fd = sock_wait(hvc);
	harness_wait_text(fd, "hvc0 ready", 10000);
	send_str(fd, "first\n");
	harness_wait_text(fd, "ECHO: FIRST", 10000);
	close(fd);
	snapshot_and_stop(&a, sock, snap, sizeof(snap));
	{
		const char *args[] = {"--restore", snap, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	fd = sock_wait(hvc);
	send_str(fd, "second\n");
	harness_wait_text(fd, "ECHO: SECOND", 10000);
	send_str(fd, "quit\n");
	close(fd);
	cr_assert_eq(harness_proc_wait(&b, 20000), 0, "stderr:\n%s", harness_proc_stderr(&b));
	{
		char path[128], console[4096] = "";
		FILE *f;

		snprintf(path, sizeof(path), "%s/a.out", dir);
		f = fopen(path, "r");
		cr_assert_not_null(f);
		console[fread(console, 1, sizeof(console) - 1, f)] = 0;
		fclose(f);
		cr_assert(strstr(console, "name=virtio-console result=pass lines=2"),
			  "both lines counted by one guest: %s", console);
	}
}

/* Sums one field (kB) over the smaps entries of pid that map path. */
static long smaps_kb(pid_t pid, const char *path, const char *field)
{
	size_t flen = strlen(field);
	bool in = false, seen = false;
	char file[64], line[512];
	unsigned long lo, hi;
	long total = 0, kb;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/smaps", (int)pid);
	f = fopen(file, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		/* A mapping starts with its range ("7f00-7f80 rw-p ..."); fields are "Name: N kB".
		 */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = strstr(line, path) != NULL;
			seen = seen || in;
		} else if (in && !strncmp(line, field, flen) && line[flen] == ':' &&
			   sscanf(line + flen + 1, "%ld", &kb) == 1) {
			total += kb;
		}
	}
	fclose(f);
	cr_assert(seen, "no mapping of %s in pid %d", path, (int)pid);
	return total;
}

/* Runs one echo round on a restored clone's serial socket and leaves it running. */
static int clone_start(struct harness_proc *p, const char *tag, const char *snap, char *con,
		       size_t size)
{
	char serial[128];
	int fd;

	snprintf(con, size, "%s/%s.con", dir, tag);
	snprintf(serial, sizeof(serial), "unix:%s", con);
	{
		const char *args[] = {"--restore", snap, "--serial", serial, NULL};

		harness_proc_start(p, dir, tag, args);
	}
	fd = sock_wait(con);
	send_str(fd, "clone\n");
	harness_wait_text(fd, "ECHO: clone", 10000);
	return fd;
}

/*
 * Two clones from one snapshot run side by side, each its own guest (its
 * own console, its own line count), and share the snapshot's memory: the
 * memory file is mapped copy-on-write, so each holds only the pages it
 * wrote as its own.
 */
Test(snapshot, clones_run_side_by_side_and_share_memory)
{
	char snap[96], mem[128], con_b[96], con_c[96];
	struct harness_proc b, c;
	int fb, fc;

	echo_parent_snapshot("128M", "parent", snap, sizeof(snap));
	snprintf(mem, sizeof(mem), "%s/memory", snap);

	fb = clone_start(&b, "b", snap, con_b, sizeof(con_b));
	fc = clone_start(&c, "c", snap, con_c, sizeof(con_c));
	cr_assert_lt(smaps_kb(b.pid, mem, "Private_Dirty"), 8 * 1024,
		     "clone b copied more than it wrote");
	cr_assert_lt(smaps_kb(c.pid, mem, "Private_Dirty"), 8 * 1024,
		     "clone c copied more than it wrote");
	send_str(fb, "b-only\nquit\n");
	harness_wait_text(fb, "result=pass lines=3", 10000);
	send_str(fc, "quit\n");
	harness_wait_text(fc, "result=pass lines=2", 10000);
	close(fb);
	close(fc);
	cr_assert_eq(harness_proc_wait(&b, 20000), 0, "stderr:\n%s", harness_proc_stderr(&b));
	cr_assert_eq(harness_proc_wait(&c, 20000), 0, "stderr:\n%s", harness_proc_stderr(&c));
}

/* A restored VM (memory mapped from a file, not a memfd) can be snapshotted again. */
Test(snapshot, a_restored_vm_snapshots_again)
{
	char con[96], sock[96], snap[96], snap2[128];
	struct harness_proc b, c;
	int fd;

	echo_parent_snapshot("64M", "one", snap, sizeof(snap));
	snprintf(con, sizeof(con), "%s/a.con", dir);
	snprintf(sock, sizeof(sock), "%s/a.api", dir);
	{
		const char *args[] = {"--restore", snap, "--api-sock", sock, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	fd = sock_wait(con);
	send_str(fd, "two\n");
	harness_wait_text(fd, "ECHO: two", 10000);
	close(fd);
	snprintf(snap2, sizeof(snap2), "%s/snap2", dir);
	snapshot_into(sock, snap2);
	stop_vm(&b, sock);
	{
		const char *args[] = {"--restore", snap2, NULL};

		harness_proc_start(&c, dir, "c", args);
	}
	fd = sock_wait(con);
	send_str(fd, "three\nquit\n");
	harness_wait_text(fd, "result=pass lines=3", 10000);
	close(fd);
	cr_assert_eq(harness_proc_wait(&c, 20000), 0, "stderr:\n%s", harness_proc_stderr(&c));
}
