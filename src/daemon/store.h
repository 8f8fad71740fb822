/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_STORE_H
#define BUNSHIN_DAEMON_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/error.h"

/*
 * bunshind's state: tenants, users, tokens, flavors, images, instances,
 * quotas, networks and ports and the audit log, behind one ops table so that a PostgreSQL
 * backend can replace the embedded SQLite one for many hosts. Every call
 * that changes state is one transaction: it happens whole or not at all.
 *
 * Reads hand back jansson objects (one per row, keys as in docs/daemon-api.yaml)
 * because the daemon only forwards them to clients or picks a few fields;
 * the caller owns the reference. Errors are a negative errno plus err:
 *   -ENOENT  no such row (or not visible to the tenant asked for)
 *   -EEXIST  a name already taken
 *   -EDQUOT  a tenant quota would be exceeded (err names which)
 *   -ENOSPC  the host's capacity would be exceeded
 *   -EBUSY   the row is in use (a flavor an instance runs, a tenant with users)
 *   -EIO     the database failed
 */

#define STORE_NAME_MAX 63
/*
 * Ports one network holds, whatever its size: its instances' taps are
 * ports of one Linux bridge, which takes 1024 (BR_MAX_PORTS), port 0 not
 * being one a tap can have.
 */
#define STORE_NETWORK_PORTS_MAX 1023

enum store_role { STORE_ROLE_ADMIN, STORE_ROLE_MEMBER, STORE_ROLE_VIEWER };

/* Who a token belongs to. */
struct store_principal {
	int64_t user_id;
	int64_t tenant_id;
	enum store_role role;
	char user[STORE_NAME_MAX + 1];
	char tenant[STORE_NAME_MAX + 1];
};

struct store_quota {
	int64_t instances;
	int64_t vcpus;
	int64_t ram_mib;
};

/* What the host may hand out: its CPUs and RAM times the allocation ratios. */
struct store_capacity {
	int64_t vcpus;
	int64_t ram_mib;
};

struct store_flavor_new {
	const char *name;
	int64_t vcpus, ram_mib, disk_gib;
	int64_t tenant_id; /* 0: public */
};

struct store_image_new {
	const char *name;
	const char *kind; /* "raw" or "kernel" */
	const char *path;
	const char *cmdline; /* kernel images: the command line, may be NULL */
	int64_t size;
	const char *sha256;	 /* hex */
	int64_t tenant_id;	 /* 0: public */
	int64_t kernel_id;	 /* raw images: the kernel image it boots with, 0: none */
	const char *initrd_path; /* kernel images: their initrd, may be NULL */
	int64_t initrd_size;
	const char *initrd_sha256;
};

struct store_instance_new {
	int64_t tenant_id;
	const char *name;
	int64_t flavor_id, image_id;
	const char *state;	    /* the first state: "starting" or "stopped" */
	const char *restart_policy; /* "never" (NULL), "on-failure" or "always" */
};

/* The VMM's side of an instance, as the supervisor records it. */
struct store_instance_run {
	const char *state;
	int64_t pid;	    /* 0: none */
	uint64_t pid_start; /* the process's start time (/proc/PID/stat field 22) */
	const char *api_sock;
	const char *error; /* NULL clears it */
};

struct store_event {
	int64_t tenant_id; /* 0: global */
	const char *who;
	const char *action; /* "POST /v1/instances" */
	const char *target;
	const char *result; /* "201" or "409 quota exceeded: ..." */
};

struct store_network_new {
	int64_t tenant_id;
	const char *name;
	const char *cidr; /* checked by the caller: the store allocates from it */
};

/* What the metadata service serves an instance (NULL: none); the key is copied. */
struct store_instance_meta {
	const char *key_name, *public_key, *user_data_b64;
};

struct store_keypair_new {
	int64_t tenant_id;
	const char *name, *type, *public_key, *fingerprint;
};

struct store_forward_new {
	int64_t instance_id;
	const char *proto; /* "tcp" or "udp" */
	int64_t host_port, guest_port;
};

struct store;

struct store_ops {
	void (*close)(struct store *s);
	int (*schema_version)(struct store *s);

	/* First start: true when no tenant exists yet. */
	int (*is_empty)(struct store *s, bool *empty, struct error *err);

	int (*token_lookup)(struct store *s, const char *hash, struct store_principal *out,
			    struct error *err);

	int (*tenant_create)(struct store *s, const char *name, const struct store_quota *q,
			     int64_t *id, struct error *err);
	int (*tenant_get)(struct store *s, const char *name, json_t **out, struct error *err);
	int (*tenant_list)(struct store *s, json_t **out, struct error *err);
	int (*tenant_delete)(struct store *s, const char *name, struct error *err);

	int (*user_create)(struct store *s, int64_t tenant_id, const char *name,
			   enum store_role role, int64_t *id, struct error *err);
	/* tenant_id 0: every tenant's. */
	int (*user_list)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	int (*user_get)(struct store *s, const char *name, json_t **out, struct error *err);
	/* Its tokens go with it. */
	int (*user_delete)(struct store *s, int64_t id, struct error *err);

	int (*token_create)(struct store *s, int64_t user_id, const char *hash,
			    const char *description, int64_t *id, struct error *err);
	int (*token_list)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	/* tenant_id 0: any tenant's token. */
	int (*token_delete)(struct store *s, int64_t tenant_id, int64_t id, struct error *err);

	int (*flavor_create)(struct store *s, const struct store_flavor_new *f, int64_t *id,
			     struct error *err);
	/* Public flavors and the tenant's own; tenant_id 0 for all of them. */
	int (*flavor_list)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	int (*flavor_get)(struct store *s, int64_t tenant_id, const char *name, json_t **out,
			  struct error *err);
	/* -EBUSY while an instance uses it. */
	int (*flavor_delete)(struct store *s, int64_t id, struct error *err);

	int (*image_create)(struct store *s, const struct store_image_new *im, int64_t *id,
			    struct error *err);
	int (*image_list)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	int (*image_get)(struct store *s, int64_t tenant_id, const char *name, json_t **out,
			 struct error *err);
	/* -EBUSY while an instance uses it; the file is the caller's to remove. */
	int (*image_delete)(struct store *s, int64_t id, struct error *err);

	/*
	 * Checks the tenant's quota and the host's capacity and inserts the
	 * instance, in one write transaction taken up front, so that two
	 * creates at once cannot both see room for one.
	 */
	int (*instance_create)(struct store *s, const struct store_instance_new *in,
			       const struct store_capacity *cap, int64_t *id, struct error *err);
	/* tenant_id 0: every tenant's (the supervisor's and the operator's view). */
	int (*instance_list)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	/* ref: an id ("12") or a name within the tenant. */
	int (*instance_get)(struct store *s, int64_t tenant_id, const char *ref, json_t **out,
			    struct error *err);
	int (*instance_set_run)(struct store *s, int64_t id, const struct store_instance_run *run,
				struct error *err);
	/* Sets only the state, and only when it is now `from` (NULL: any): -EAGAIN otherwise. */
	int (*instance_set_state)(struct store *s, int64_t id, const char *from, const char *to,
				  const char *error, struct error *err);
	/* One more automatic restart, or (reset) back to none after a start by hand. */
	int (*instance_count_restart)(struct store *s, int64_t id, bool reset, struct error *err);
	int (*instance_delete)(struct store *s, int64_t id, struct error *err);

	int (*quota_get)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	int (*quota_set)(struct store *s, int64_t tenant_id, const struct store_quota *q,
			 struct error *err);
	/* Per tenant: quota and what its instances hold. */
	int (*usage)(struct store *s, json_t **out, struct error *err);

	int (*event_add)(struct store *s, const struct store_event *ev, struct error *err);
	/* Newest first; target NULL for all, else only those ("instance 12"). */
	int (*event_list)(struct store *s, int64_t tenant_id, const char *target, int limit,
			  json_t **out, struct error *err);

	/*
	 * instance_create, and in the same transaction a port on network_id
	 * with its lowest free address (-ENOSPC when the network is full).
	 */
	int (*instance_create_port)(struct store *s, const struct store_instance_new *in,
				    const struct store_capacity *cap, int64_t network_id,
				    int64_t *id, struct error *err);
	/* Networks: its bridge is named bn-ID. */
	int (*network_create)(struct store *s, const struct store_network_new *n, int64_t *id,
			      struct error *err);
	/* tenant_id 0: every tenant's; each with its number of ports. */
	int (*network_list)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	/* ref: an id or a name within the tenant. */
	int (*network_get)(struct store *s, int64_t tenant_id, const char *ref, json_t **out,
			   struct error *err);
	/* -EBUSY while a port is on it. */
	int (*network_delete)(struct store *s, int64_t id, struct error *err);
	/* Ports (with their instance's state and network's bridge and cidr); network_id 0: all. */
	int (*port_list)(struct store *s, int64_t network_id, json_t **out, struct error *err);
	/*
	 * The instance's flavor, with quota and capacity checked as by
	 * instance_create (the instance counted at its new size, not both) in
	 * one write transaction: -EDQUOT or -ENOSPC and nothing changed.
	 */
	int (*instance_resize)(struct store *s, int64_t id, int64_t flavor_id,
			       const struct store_capacity *cap, struct error *err);
	/*
	 * count copies of instance src_id in one write transaction: its
	 * tenant, flavor, image and restart policy, named PREFIX-1..PREFIX-count,
	 * STARTING, cloned_from src_id, each with a port on the source's
	 * network if it has one. Quota and capacity are checked as by
	 * instance_create for all of them: -EDQUOT, -ENOSPC or -EEXIST (a
	 * name) and nothing is created. ids: count entries, filled.
	 */
	int (*instance_clone)(struct store *s, int64_t src_id, const char *prefix, int count,
			      const struct store_capacity *cap, int64_t *ids, struct error *err);

	/* Key pairs (keypair.c validates them): name unique per tenant. */
	int (*keypair_create)(struct store *s, const struct store_keypair_new *k, int64_t *id,
			      struct error *err);
	int (*keypair_list)(struct store *s, int64_t tenant_id, json_t **out, struct error *err);
	int (*keypair_get)(struct store *s, int64_t tenant_id, const char *name, json_t **out,
			   struct error *err);
	int (*keypair_delete)(struct store *s, int64_t id, struct error *err);
	/*
	 * The metadata service's view of the instance whose port holds ip on
	 * network_id: id, name, tenant_id, flavor, mac, ip, network_cidr,
	 * uuid (made now for an instance that has none), key_name, public_key,
	 * user_data (base64). -ENOENT when no port holds ip.
	 */
	int (*instance_meta_lookup)(struct store *s, int64_t network_id, const char *ip,
				    json_t **out, struct error *err);
	/* instance_create_port, with the instance's metadata in the same transaction. */
	int (*instance_create_meta)(struct store *s, const struct store_instance_new *in,
				    const struct store_capacity *cap, int64_t network_id,
				    const struct store_instance_meta *meta, int64_t *id,
				    struct error *err);

	/* firewall.c: an isolated network has no egress (store_sqlite_fw.inc). */
	int (*network_set_isolated)(struct store *s, int64_t id, bool isolated, struct error *err);
	/*
	 * A host port forwarded to an instance's port: -EEXIST when the host
	 * port is taken, -EDQUOT past max forwards for the instance's tenant,
	 * -EINVAL when the instance has no port; checked and inserted in one
	 * write transaction.
	 */
	int (*forward_create)(struct store *s, const struct store_forward_new *f, int64_t max,
			      int64_t *id, struct error *err);
	/* instance_id 0: every forward, each with its port's ip and bridge. */
	int (*forward_list)(struct store *s, int64_t instance_id, json_t **out, struct error *err);
	int (*forward_delete)(struct store *s, int64_t instance_id, int64_t id, struct error *err);
	/* A kernel image's initrd, once: -EEXIST when it has one, -EINVAL for a raw image. */
	int (*image_set_initrd)(struct store *s, int64_t id, const char *path, int64_t size,
				const char *sha256, struct error *err);
	/*
	 * Moves quota from one tenant to another in one write transaction:
	 * -EBUSY (err naming the resource) when the donor would be left with
	 * less than its instances hold, and nothing changed.
	 */
	int (*quota_move)(struct store *s, int64_t from, int64_t to, const struct store_quota *q,
			  struct error *err);
	/*
	 * An instance's disk chain (disk_layers.c): its top's jail path
	 * (NULL: the first, /disk.overlay) and its frozen layers, a JSON array
	 * of jail paths (NULL: none); instance_get gives them back as
	 * disk_top and disk_layers.
	 */
	int (*instance_set_disk)(struct store *s, int64_t id, const char *top, const char *layers,
				 struct error *err);
	/*
	 * Server images (server_image.c): image_create's row with status
	 * "saving" (-EEXIST for a name taken), made "active" with its sha256
	 * and size once whole; every image still saving (id, name, path, tenant_id).
	 */
	int (*image_create_saving)(struct store *s, const struct store_image_new *im, int64_t *id,
				   struct error *err);
	int (*image_set_active)(struct store *s, int64_t id, const char *sha256, int64_t size,
				struct error *err);
	int (*image_list_saving)(struct store *s, json_t **out, struct error *err);
	/*
	 * A stopped (or failed) instance's image, and its disk chain reset (a
	 * new first top): -EBUSY when it is in another state now.
	 */
	int (*instance_rebuild)(struct store *s, int64_t id, int64_t image_id, struct error *err);
};

struct store {
	const struct store_ops *ops;
};

/* Calls an operation: STORE(s, tenant_list, &out, err). */
#define STORE(s, op, ...) ((s)->ops->op((s)__VA_OPT__(, ) __VA_ARGS__))

#define STORE_DEFAULT_QUOTA ((struct store_quota){10, 20, 50 * 1024})

/* Opens (creating when absent) the SQLite database at path, upgraded to the newest schema. */
struct store *store_sqlite_open(const char *path, struct error *err);

/*
 * For the upgrade tests: opens path upgraded only to `version` (an older
 * schema), as an earlier bunshind would have left it.
 */
struct store *store_sqlite_open_version(const char *path, int version, struct error *err);

/* The newest schema version this build knows. */
int store_sqlite_latest_version(void);

const char *store_role_name(enum store_role r);
int store_role_parse(const char *s, enum store_role *out);

#endif
