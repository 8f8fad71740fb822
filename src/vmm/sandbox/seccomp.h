/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SANDBOX_SECCOMP_H
#define BUNSHIN_VMM_SANDBOX_SECCOMP_H

#include "../../common/error.h"

/* --seccomp: what a system call outside the allow-list does. */
enum sandbox_seccomp {
	SANDBOX_SECCOMP_KILL, /* logged on stderr, then the VMM exits (status 1); the default */
	SANDBOX_SECCOMP_LOG,  /* allowed, and logged by the kernel (audit): for debugging */
	SANDBOX_SECCOMP_OFF,  /* no filter at all */
};

/*
 * Installs the VMM's seccomp filter on every thread of the process
 * (TSYNC), after setting no_new_privs. Called once, when start-up is over
 * and before the first guest instruction: from then on the process may
 * only make the system calls (and, for ioctl, socket, clone, mmap and
 * mprotect, with the arguments) that running, rebooting, pausing and
 * snapshotting a VM need. Returns 0 or a negative errno with err set.
 */
int sandbox_seccomp_install(enum sandbox_seccomp mode, struct error *err);

/* Threads with a filter of their own, narrower than the process's. */
enum sandbox_thread {
	SANDBOX_THREAD_VCPU,
	SANDBOX_THREAD_IO,
	SANDBOX_THREAD_CONSOLE, /* a console backend's input thread (stdin, or its socket) */
	SANDBOX_THREAD_API,	/* the control API's server thread (libmicrohttpd's) */
	SANDBOX_THREAD_KINDS,
};

/*
 * Called by a vCPU, I/O or console input thread when it starts: adds the
 * filter of its kind to the calling thread, on top of the process-wide
 * one. A thread started before sandbox_seccomp_install() (the I/O and
 * console threads, created with the devices) gets it from there: the process-wide filter has to
 * come first (TSYNC refuses threads whose filters differ from the caller's), so
 * sandbox_seccomp_install() signals each such thread to add its own, and
 * returns once they all have. Nothing with --seccomp=off.
 */
void sandbox_seccomp_thread(enum sandbox_thread kind);

#ifdef BUNSHIN_TEST_HOOKS
/*
 * Test builds only: if BUNSHIN_SECCOMP_SELFTEST is set in the environment,
 * the calling thread makes a forbidden system call (socket(AF_INET)), so a
 * test can see the VMM die with the logged reason. Set to "vcpu" or "io",
 * it is that thread instead, with a call only its own filter forbids
 * (openat), once it has that filter; "console" is a console input thread,
 * "api" the API thread (once it has taken a connection: its filter comes then).
 */
void sandbox_seccomp_selftest(void);
#endif

#endif
