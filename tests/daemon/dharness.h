/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_TESTS_DAEMON_HARNESS_H
#define BUNSHIN_TESTS_DAEMON_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

/*
 * A real bunshind in a temporary state directory, its API on a unix
 * socket there, reached over HTTP with the project's own client. The
 * binaries come from the environment meson sets (BUNSHIND, BUNSHIN_CLI,
 * BUNSHIN_VMM, BUNSHIN_GUEST_ELF).
 */
struct dh {
	char dir[128];	   /* the state directory */
	char sock[192];	   /* unix:DIR/api.sock */
	char admin[80];	   /* the admin token */
	pid_t pid;	   /* bunshind */
	char log[192];	   /* its stdout and stderr */
	char cgparent[64]; /* --cgroup-parent: this directory's own, removed at cleanup */
};

/* Starts bunshind in a new state directory; extra arguments are appended. */
void dh_start(struct dh *h, const char *const *extra);
/* Starts it again on the same directory (after dh_kill9 or dh_term). */
void dh_restart(struct dh *h, const char *const *extra);
void dh_kill9(struct dh *h);
/* SIGTERM, and waits for it to exit; returns its exit status. */
int dh_term(struct dh *h);
/* Stops bunshind and every VMM it started, removes the directory. */
void dh_cleanup(struct dh *h);

/* One request; returns the HTTP status, *out the parsed body (or NULL). */
int dh_req(struct dh *h, const char *token, const char *method, const char *path, const char *body,
	   json_t **out);
/* A GET whose answer is text (the console): *body malloc'd. */
int dh_text(struct dh *h, const char *token, const char *path, char **body);
/* The error code of an error answer ("quota_exceeded"), or "". */
const char *dh_code(const json_t *out);

/* A tenant, with a user of the role and a token for that user (into token). */
void dh_tenant_user(struct dh *h, const char *tenant, const char *user, const char *role,
		    char *token, size_t size);

/* The instance's state after waiting (up to ms) for it to become `want`. */
const char *dh_wait_state(struct dh *h, const char *token, const char *ref, const char *want,
			  int ms);
int64_t dh_instance_pid(struct dh *h, const char *token, const char *ref);

/*
 * Pids of the bunshin-vmm processes whose command line names this state
 * directory: an unjailed VMM, or a jailed one's launcher (the jailed VMM
 * itself, in a PID namespace of its own, is dh_jailed_vmm()'s).
 */
int dh_vmm_pids(struct dh *h, pid_t *pids, int max);
bool dh_alive(pid_t pid);
/* Whether pid is in another PID namespace than the test's. */
bool dh_other_pidns(pid_t pid);
/* The jailed VMM under a launcher: its child (waits up to 2 s for it), or 0. */
pid_t dh_jailed_vmm(pid_t launcher);

/* Skips the test (with a printed reason) when /dev/kvm cannot be used. */
void dh_need_kvm(void);
/* Skips the test (with a printed reason) when there is no dnsmasq for bunshind to run. */
void dh_need_dnsmasq(void);

/* o's string key, or o[sub]'s when sub is not NULL; "" when absent. */
const char *dh_jstr(const json_t *o, const char *sub, const char *key);
/* The instance's console once it holds a whole line with text (or after ms); malloc'd. */
char *dh_console_until(struct dh *h, const char *ref, const char *text, int ms);
/* Types text on the instance's serial console (GET .../console/attach), as the admin. */
void dh_console_send(struct dh *h, const char *ref, const char *text);
/*
 * KEY's value on the guest's "BUNSHIN-TEST name=NAME ..." line in console,
 * "" when absent; in a static buffer (the next call overwrites it).
 */
const char *dh_test_field(const char *console, const char *name, const char *key);

/*
 * The disk guest (test=virtio-blk blk_wait=1 blk_probe=1): it waits for
 * "seed=N" on its console, reports whose pattern its disk held (found=),
 * writes N's and powers off.
 */
/* Whole lines (the guest may be in the middle of one) of text that hold needle. */
int dh_count_lines(const char *text, const char *needle);
/* ref's console once n whole lines hold needle (asserted, within 60 s); malloc'd. */
char *dh_wait_lines(struct dh *h, const char *ref, const char *needle, int n);
/*
 * After ref's readies-th "result=ready" (0: already waiting, e.g. a
 * restored clone), types seed=N and gives back found= of its passes-th
 * pass (malloc'd), once it has stopped.
 */
char *dh_blk_tell(struct dh *h, const char *ref, int readies, int seed, int passes);
/* sha256sum of a file, 64 hex digits. */
void dh_sha256_file(const char *path, char out[65]);

/* bunshin with args as the admin: its exit status; its stdout and stderr into out. */
int dh_cli(struct dh *h, const char *const *args, char *out, size_t size);
/* dh_start(), and work = DIR.work: a directory of the test's own beside the state directory. */
void dh_start_work(struct dh *h, const char *const *extra, char *work, size_t size);
/* dh_cleanup(), and work removed. */
void dh_cleanup_work(struct dh *h, const char *work);

/* How many files in STATE/images have part in their name. */
int dh_image_files(struct dh *h, const char *part);

#endif
