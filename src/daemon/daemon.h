/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_DAEMON_H
#define BUNSHIN_DAEMON_DAEMON_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/error.h"
#include "../common/httpd.h"
#include "store.h"

/*
 * bunshind: one process, one state directory, one SQLite file. The HTTP
 * server's worker threads take a store connection from a small pool per
 * request; the supervisor thread watches every VMM through a pidfd.
 *
 *   STATE_DIR/state.db            the store
 *   STATE_DIR/admin.token         the first admin token (0600), first start only
 *   STATE_DIR/instances/ID/       api.sock, console.log, vmm.log, vmm.pid
 *   STATE_DIR/bunshind.sock       the API on a unix socket (default)
 */

#define DAEMON_LISTEN_MAX  4
#define DAEMON_API_THREADS 4

/* Instance states. */
#define ST_STARTING  "starting"
#define ST_RUNNING   "running"
#define ST_PAUSED    "paused"
#define ST_STOPPING  "stopping"
#define ST_STOPPED   "stopped"
#define ST_ERROR     "error"
#define ST_SUSPENDED "suspended" /* saved to its directory, no VMM: a start restores it */

struct daemon_opts {
	const char *state_dir;
	const char *listen[DAEMON_LISTEN_MAX];
	unsigned int nlisten;
	const char *vmm;
	const char *guest;
	double cpu_ratio, ram_ratio, disk_ratio;
	unsigned int stop_timeout_s; /* power button, then forced after this */
	bool stop_vms_on_exit;
	/* jail.c: each VMM jailed in its instance directory, unless no_jail */
	bool no_jail, no_cgroup;
	uint64_t uid_base, gid_base; /* an instance's uid: uid_base + its id */
	const char *cgroup_parent;   /* instances' cgroups: PARENT/instance-ID */
	uint64_t image_max_size;     /* the largest image an upload or conversion may make */
	const char *network_pool;    /* network.c: default networks' /24s come from it */
	bool imds_require_token;     /* metadata.c: EC2 GETs need an IMDSv2 token */
	/* tls.c: HTTPS on the TCP listeners */
	const char *tls_cert, *tls_key;
	int64_t max_forwards; /* forward.c: port forwards per tenant */
};

struct store_pool;
struct supervisor;

struct daemon {
	struct daemon_opts opts;
	char db_path[4096];
	struct store_pool *pool;
	struct supervisor *sup;
	struct httpd *httpd[DAEMON_LISTEN_MAX];
	long host_cpus;
	uint64_t host_ram_mib;
	bool cgroups; /* jailed VMMs get a cgroup (the host has cpu, memory, pids) */
	char *tls_cert_pem, *tls_key_pem; /* tls.c: --tls-cert and --tls-key, read and checked */
};

/* pool.c: store connections shared by the threads, one per user at a time. */
struct store_pool *pool_open(const char *path, unsigned int size, struct error *err);
struct store *pool_get(struct store_pool *p);
void pool_put(struct store_pool *p, struct store *s);
void pool_close(struct store_pool *p);

/* auth.c */
#define AUTH_TOKEN_LEN	68 /* "bsn_" + 64 hex digits */
#define AUTH_SHA256_HEX 65
int auth_new_token(char out[AUTH_TOKEN_LEN + 1], struct error *err);
void auth_hash_token(const char *token, char out[AUTH_SHA256_HEX]);
int auth_hash_file(const char *path, char out[AUTH_SHA256_HEX], int64_t *size, struct error *err);

/*
 * api_resources.c: copies an image file into STATE_DIR/images (under a
 * temporary name until whole), its path into dst, with its SHA-256 and size.
 */
int daemon_image_copy(const struct daemon *d, const char *src, const char *name, char *dst,
		      size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, struct error *err);

/*
 * image.c: a whole image file at tmp (in STATE_DIR/images, fsync'd) made
 * an image: a qcow2 one converted to raw (*converted), hashed unless
 * hashed says sha and bytes are already its, renamed to its real name
 * (into dst). On failure nothing is left, tmp included.
 */
int dimage_finish(const struct daemon *d, char *tmp, size_t tmp_size, const char *name, char *dst,
		  size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, bool hashed,
		  bool *converted, struct error *err);
/* PUT /v1/images/NAME/data, the raw body streamed to disk (docs/daemon-api.yaml). */
extern const struct httpd_stream_ops dimage_stream_ops;

/* bootstrap.c: the admin tenant, user and token, default flavors, the test guest. */
int bootstrap_first_start(struct daemon *d, struct error *err);

/* capacity.c */
void daemon_capacity(const struct daemon *d, struct store_capacity *cap);

/* supervisor.c */
int supervisor_start(struct daemon *d, struct error *err);
/* Boots the instance's VMM; on failure the instance is left in ERROR with the reason. */
int supervisor_spawn(struct daemon *d, struct store *s, const json_t *inst, struct error *err);
/*
 * Power button, then forced after the stop timeout, on a thread of its
 * own. resume: whatever the state (a stop a dead bunshind left half done).
 */
int supervisor_stop_async(struct daemon *d, int64_t id, bool resume, struct error *err);
/* Forced stop, waiting for the VMM to be gone (for delete). */
int supervisor_kill_wait(struct daemon *d, int64_t id, struct error *err);
/* Waits up to timeout_ms for the instance's VMM (its pid and start time) to be gone. */
bool supervisor_vmm_gone(const json_t *inst, int timeout_ms);
/* A VMM API action ("pause", "resume", ...) on a running instance. */
int supervisor_vmm_action(const json_t *inst, const char *action, struct error *err);
/* Reconciles the stored instances with the processes really there; adopts the live ones. */
int supervisor_adopt_all(struct daemon *d, struct error *err);
void supervisor_shutdown(struct daemon *d);
/* The instance's directory: STATE_DIR/instances/ID. */
void supervisor_instance_dir(const struct daemon *d, int64_t id, char *out, size_t size);
/* Removes it and the files bunshind and the VMM put there. */
void supervisor_remove_dir(const struct daemon *d, int64_t id);

/* disk.c: the VMM arguments for an instance's disk; disk_check: can this image boot here? */
int disk_check(const json_t *image, struct error *err);
int disk_vmm_args(const struct daemon *d, const json_t *inst, const char *dir, char **argv,
		  int *argc, int max, struct error *err);

/*
 * disk_layers.c: an instance's disk chain (its top and frozen layers, jail
 * paths) across clones. A clone of a disk-booted source:
 * dlayer_freeze_begin() stores the chains the snapshot into /SNAPNAME will
 * make (before it), dlayer_freeze_failed() puts the source's back if the
 * snapshot did not freeze its disk, dlayer_share() takes the frozen layers
 * over and links them into each clone's directory. dlayer_settle(), before
 * a start: the top is there, or the start becomes a restore (a clone not
 * yet restored) or the chain is put back (a snapshot that never happened).
 */
bool dlayer_has_disk(const json_t *inst);
/* Whether a snapshot may freeze the instance's disk once more: -ELOOP, saying why, if not. */
int dlayer_freezable(const json_t *inst, struct error *err);
const char *dlayer_top(const json_t *inst);
int dlayer_freeze_begin(struct store *s, const json_t *src, const char *snapname,
			const int64_t *ids, int64_t n, struct error *err);
void dlayer_freeze_failed(struct store *s, const json_t *src, const char *sdir,
			  const char *snapname);
int dlayer_share(const struct daemon *d, const json_t *src, const char *snapname,
		 const int64_t *ids, int64_t n, struct error *err);
int dlayer_settle(const struct daemon *d, struct store *s, json_t *inst, struct error *err);
/*
 * suspend.c: an instance saved into its directory's SUSP_DIR, its VMM
 * gone; a start restores it (vmmctl.c, restore = SUSP_DIR).
 */
#define SUSP_DIR "suspend"
struct api_ctx;
void susp_suspend(struct api_ctx *c, const json_t *inst);
/* A suspended instance stopped: what was saved goes, the next start boots cold. */
void susp_forget(struct api_ctx *c, const json_t *inst);
/* The saved files out of the instance's directory. */
void susp_drop(const struct daemon *d, int64_t id);
/* A rebuilt instance's old chain (and a clone's snapshot) out of its directory. */
void dlayer_reset(const struct daemon *d, int64_t id);
void dlayer_remove(const char *dir);
/* PUT /vm/snapshot {"dir": vdir, "type": type} on the instance's VMM (its api_sock). */
int dlayer_vmm_snapshot(const json_t *src, const char *vdir, const char *type, struct error *err);
/*
 * server_image.c: at start-up, images a killed bunshind left "saving" go
 * (row and files); at shutdown, the copies in flight stop (before the pool).
 */
void simg_recover(struct daemon *d);
void simg_shutdown(void);
/* Whether an image of instance inst_id's disk is being saved (it must not start meanwhile). */
bool simg_holds(int64_t inst_id);

/*
 * jail.c: an instance's sandbox. djail_setup() readies its directory as
 * the jail's root (the kernel linked in, the files the VMM writes owned
 * by its user); djail_argv() appends the jail's options (they come first
 * on the VMM's command line).
 */
int djail_ids(const struct daemon *d, int64_t id, uid_t *uid, gid_t *gid, struct error *err);
int djail_setup(const struct daemon *d, const json_t *inst, const char *dir, struct error *err);
int djail_argv(const struct daemon *d, const json_t *inst, const char *dir, char **argv, int *argc,
	       int max, struct error *err);
char *djail_cgroup_name(const struct daemon *d, int64_t id);
/* "v2", "v1", or NULL: the host cannot give instances a cgroup. */
const char *djail_cgroup_probe(const struct daemon *d);
void djail_cgroup_remove(const struct daemon *d, int64_t id);
/* At exit: the instances' cgroup parent, when it is empty. */
void djail_cgroup_parent_remove(const struct daemon *d);
/* The memory charged to an instance's cgroup: -ENOENT without one. */
int djail_cgroup_memory(const struct daemon *d, int64_t id, uint64_t *bytes);
/* A file in a directory a VMM owns, opened to read: no symlink, no FIFO (-errno). */
int djail_open_read(const char *path);
/*
 * The httpc endpoint of a VMM's API socket, never a link the VMM planted
 * in its place: an fd to close after the call, or -errno.
 */
int djail_sock_ep(const char *sock, char *ep, size_t size);
/* Whether pid is in another PID namespace than ours (a jailed VMM, not its launcher). */
bool djail_other_pidns(pid_t pid);

/*
 * network.c: an instance's host links (its network's bridge, its tap on
 * it), made again whenever needed; its --net option for the VMM; the
 * reconciliation of bn-* and bt-* links with the store at start-up.
 */
#define DAEMON_NETWORK_POOL "10.128.0.0/9"
int netd_pool_parse(const char *s, uint32_t *base, unsigned int *prefix, struct error *err);
int netd_instance_links(const struct daemon *d, const json_t *inst, struct error *err);
int netd_vmm_args(const struct daemon *d, const json_t *inst, char **argv, int *argc, int max,
		  struct error *err);
void netd_instance_gone(int64_t id);
int netd_reconcile(struct daemon *d, struct error *err);
/*
 * dhcp.c: one dnsmasq per network with a bridge, static leases from the
 * ports. dhcpd_begin() starts its thread (netd_reconcile() calls it);
 * dhcpd_kick() asks for a sync with the store, dhcpd_sync_wait() waits
 * (bounded) for one, e.g. before a VMM boots.
 */
void dhcpd_begin(struct daemon *d);
void dhcpd_kick(void);
void dhcpd_sync_wait(void);

/* api.c */
extern const struct httpd_route daemon_routes[];

/*
 * clone.c: a clone's snapshot, hard-linked into its instance directory
 * (CLONE_SNAP_DIR/state and /memory); a clone's first start is a restore
 * of it: the VMM arguments that replace a cold boot's.
 */
#define CLONE_SNAP_DIR "snapshot"
int clone_vmm_argv(const struct daemon *d, const json_t *inst, const char *vdir, char **argv,
		   int *argc, int max, struct error *err);
/* A restoring clone's --cgroup-limits value (malloc'd, NULL without memory). */
char *clone_cgroup_limits(const json_t *inst);
/* Snapshots a killed bunshind left in an instance directory (supervisor_remove_dir()). */
void clone_remove_leftovers(const char *dir);
/* tls.c: reads and checks --tls-cert and --tls-key; warns about plain HTTP to the network. */
int dtls_load(struct daemon *d, struct error *err);
void dtls_free(struct daemon *d);
void dtls_warn_plain(const struct daemon *d, const char *listen);

/*
 * image_boot.c: how an image boots. A raw image's kernel image (by name,
 * as visible to tenant_id; *kernel_id 0 when kernel is NULL); an initrd
 * copied or moved into STATE_DIR/images; the VMM's --kernel, --initrd and
 * --cmdline for an instance; its jail's kernel, initrd and disk.base.
 */
int dboot_kernel_ref(struct store *s, int64_t tenant_id, const char *kind, const char *kernel,
		     int64_t *kernel_id, struct error *err);
int dboot_initrd_copy(const struct daemon *d, const char *src, const char *name, char *dst,
		      size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, struct error *err);
int dboot_initrd_finish(const struct daemon *d, const char *tmp, const char *name, char *dst,
			size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, struct error *err);
int dboot_vmm_args(const json_t *inst, bool jail, char **argv, int *argc, int max,
		   struct error *err);
int dboot_jail_files(const json_t *inst, const char *dir, struct error *err);
/* jail.c: DIR/NAME, a hard link to (or copy of) image, readable by the VMM's user. */
int djail_link(const char *image, const char *dir, const char *name, struct error *err);

#endif
