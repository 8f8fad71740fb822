/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_TEST_HARNESS_H
#define BUNSHIN_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Runs the real bunshin-vmm binary as a child process, feeds its standard
 * input and collects what the guest printed on the serial console (stdout)
 * and what the VMM logged (stderr). Integration tests assert on these.
 */

struct vmm_step {
	const char *wait_for; /* substring of stdout to wait for... */
	const char *send;     /* ...then write this to stdin */
};

struct vmm_run {
	const char *const *argv; /* NULL-terminated, argv[0] is ignored (the VMM path is used) */
	const struct vmm_step *steps;
	int nsteps;
	int timeout_ms;
	int run_as_uid;	       /* -1: as we are */
	const char *vmm_path;  /* NULL: the VMM under test ($BUNSHIN_VMM) */
	const char *term_when; /* SIGTERM the VMM once stdout holds this... */
	int term_count;	       /* ...this many times */
	/* Optional: called with the VMM's pid when step i's wait_for shows up, before its send. */
	void (*on_step)(void *ctx, int i, int pid);
	void *ctx;
};

struct vmm_result {
	int status; /* exit status, or 128 + signal */
	bool timed_out;
	char *out;
	char *err;
	double wall_ms;
};

const char *harness_vmm(void);
const char *harness_guest(const char *wrapper); /* "elf" or "bzImage" */
/*
 * argv (HARNESS_NETNS_ARGV entries) of `ip netns exec NS bunshin-vmm` with
 * the test guest, 128 MiB, --net NET and --cmdline CMDLINE.
 */
#define HARNESS_NETNS_ARGV 14
void harness_netns_guest_argv(const char **argv, const char *ns, const char *net,
			      const char *cmdline);
void harness_require_kvm(void); /* skips the test, saying why, without KVM */

int harness_run(const struct vmm_run *run, struct vmm_result *res);
/*
 * For a forked child that will exec a VMM: it is killed when the test
 * process ends, so a failed assertion (which ends the test early) never
 * leaves a VMM running behind it.
 */
void harness_die_with_parent(void);
/* In a forked child: harness_die_with_parent(), then into network namespace ns, or _exit(126). */
void harness_enter_netns(const char *ns);

/*
 * Connects to the unix socket at path, retrying for up to timeout_ms while
 * the VMM creates it (0: one try). Returns the fd, or -1.
 */
int harness_unix_connect(const char *path, int timeout_ms);
/*
 * Reads from fd, appending to buf (size bytes, *len used, kept
 * NUL-terminated), until buf holds needle or timeout_ms pass. True when it
 * does; false on timeout, end of file or error.
 */
bool harness_read_until(int fd, char *buf, size_t size, size_t *len, const char *needle,
			int timeout_ms);
/*
 * harness_read_until() from scratch, where not seeing needle fails the
 * test (showing what came). Returns what was read: a static buffer (16
 * KiB), until the next call.
 */
char *harness_wait_text(int fd, const char *needle, int timeout_ms);
void harness_free(struct vmm_result *res);

/* Finds "key=" in the BUNSHIN-TEST line for name and copies its value. */
bool harness_result_field(const char *out, const char *name, const char *key, char *val,
			  size_t len);
/* True if out holds "BUNSHIN-TEST name=<name> result=pass". */
bool harness_passed(const char *out, const char *name);
int harness_count(const char *out, const char *needle);

uint32_t harness_crc32(const uint8_t *buf, size_t len);
/* Writes len pseudo-random bytes to a new temp file; returns its malloc'd path. */
char *harness_temp_file(size_t len, uint32_t seed, uint32_t *crc);

/*
 * A test's own directory, /tmp/bunshin-<name>.XXXXXX, made in dir (size
 * bytes); harness_rm_rf() removes it (or anything else) in the teardown.
 */
void harness_tmpdir(char *dir, size_t size, const char *name);
void harness_rm_rf(const char *path);
/*
 * The usual case of that: a suite's .init and .fini that give each test a
 * fresh harness_dir, /tmp/bunshin-<test program>.XXXXXX.
 */
extern char harness_dir[64];
void harness_dir_setup(void);
void harness_dir_teardown(void);

/* A VMM run in the background, for tests that talk to it while it runs. */
struct harness_proc {
	pid_t pid;
	char err[128]; /* DIR/<tag>.err: its stderr */
	char out[128]; /* DIR/<tag>.out: where a test that wants one points its console */
};

/*
 * Starts the VMM with args (NULL-terminated, without argv[0]), its stderr
 * to DIR/<tag>.err; it dies with the test. Skips the test without KVM.
 */
void harness_proc_start(struct harness_proc *p, const char *dir, const char *tag,
			const char *const *args);
/*
 * Waits up to timeout_ms for it to exit: its exit status, or 128 + signal.
 * One that does not exit is killed and fails the test, showing its stderr.
 */
int harness_proc_wait(struct harness_proc *p, int timeout_ms);
/* Its stderr so far (the text of harness_slurp(): valid until the next call). */
char *harness_proc_stderr(const struct harness_proc *p);
/* The first 64 KiB of a file, "" when there is none; a static buffer, until the next call. */
char *harness_slurp(const char *path);

/*
 * One HTTP request to the API socket at sock (retried for 5 s while the VMM
 * creates it; a test failure if it never accepts): returns the status and
 * copies the body to reply (size bytes, truncated).
 */
int harness_api(const char *sock, const char *method, const char *path, const char *body,
		char *reply, size_t size);
/* Waits up to timeout_ms for GET /vm to say "running": the API answers before the first boot. */
void harness_wait_running(const char *sock, int timeout_ms);

/* The value after "key:" in a /proc status file (the rest of the line), or "" if absent. */
void harness_status_field(const char *path, const char *key, char *val, size_t len);

/*
 * Runs a boot guest (30 s at most) whose VMM makes the forbidden system
 * call that BUNSHIN_SECCOMP_SELFTEST=what asks for: a hook of test builds
 * only, so other builds skip the test.
 */
void harness_run_seccomp_selftest(const char *what, struct vmm_result *r);

/* Runs argv (a path or a name on PATH), output to /dev/null or out_fd (>= 0); its exit status, or
 * -1. */
int harness_cmd(const char *const *argv, int out_fd);
/* The path of a host tool (ip, ping, dnsmasq, ...) in the sbin and bin directories; false if
 * absent. */
bool harness_find_tool(const char *name, char *path, size_t len);

/* ---- live migration (test_migrate.c, test_migrate_layers.c) ---- */

/* harness_proc_start() in harness_dir, its console to p->out (DIR/<tag>.out) through --serial. */
void harness_mig_start(struct harness_proc *p, const char *tag, const char *const *args);
/* A unix: URL's socket, once the destination listens on it (10 s at most). */
void harness_wait_listening(const char *url);
/* Listens on the unix socket at path, then forks: the child (0) accepts on *lfd. */
pid_t harness_listen_and_fork(const char *path, int *lfd);
/*
 * A fake destination: accepts once, reads the header and n more bytes,
 * then closes; with save, the header and its command line go to that file.
 */
pid_t harness_fake_destination(const char *path, size_t n, const char *save);
/*
 * A fresh --incoming destination (DIR/b.*) fed head then tail: it must exit
 * 1 with one line of stderr holding want.
 */
void harness_expect_refusal(const char *want, const uint8_t *head, size_t hlen, const void *tail,
			    size_t tlen);

#endif
