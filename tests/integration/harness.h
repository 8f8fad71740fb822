/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_TEST_HARNESS_H
#define BUNSHIN_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
void harness_require_kvm(void);			/* skips the test, saying why, without KVM */

int harness_run(const struct vmm_run *run, struct vmm_result *res);
/*
 * For a forked child that will exec a VMM: it is killed when the test
 * process ends, so a failed assertion (which ends the test early) never
 * leaves a VMM running behind it.
 */
void harness_die_with_parent(void);

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

#endif
