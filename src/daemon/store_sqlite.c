// SPDX-License-Identifier: MIT
/*
 * The embedded store: one SQLite file in WAL mode (readers never wait for
 * the writer), foreign keys on, a busy timeout so that connections queue
 * for the write lock instead of failing. The schema version lives in
 * PRAGMA user_version; opening applies every migration above it, each in
 * its own transaction with the version bump, in order.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

#define SQ_BUSY_TIMEOUT_MS 10000

struct sq_store {
	struct store base;
	sqlite3 *db;
};

static sqlite3 *sq_db(struct store *s)
{
	return ((struct sq_store *)s)->db;
}

/*
 * Migration N (1-based) brings the schema from version N-1 to N. Append
 * only: a shipped migration never changes, or databases upgraded by it
 * would differ from new ones.
 */
static const char *const sq_migrations[] = {
	/* 1: resources and quotas */
	"CREATE TABLE tenants(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE users(id INTEGER PRIMARY KEY,"
	" tenant_id INTEGER NOT NULL REFERENCES tenants(id), name TEXT NOT NULL UNIQUE,"
	" role TEXT NOT NULL CHECK(role IN ('admin','member','viewer')),"
	" created INTEGER NOT NULL);"
	"CREATE TABLE tokens(id INTEGER PRIMARY KEY,"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" hash TEXT NOT NULL UNIQUE, description TEXT, created INTEGER NOT NULL);"
	"CREATE TABLE flavors(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
	" vcpus INTEGER NOT NULL CHECK(vcpus > 0), ram_mib INTEGER NOT NULL CHECK(ram_mib > 0),"
	" disk_gib INTEGER NOT NULL CHECK(disk_gib >= 0),"
	" tenant_id INTEGER REFERENCES tenants(id), created INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX flavors_name ON flavors(name, coalesce(tenant_id, 0));"
	"CREATE TABLE images(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
	" kind TEXT NOT NULL CHECK(kind IN ('raw','kernel')), path TEXT NOT NULL,"
	" cmdline TEXT, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
	" tenant_id INTEGER REFERENCES tenants(id), created INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX images_name ON images(name, coalesce(tenant_id, 0));"
	"CREATE TABLE instances(id INTEGER PRIMARY KEY,"
	" tenant_id INTEGER NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,"
	" flavor_id INTEGER NOT NULL REFERENCES flavors(id),"
	" image_id INTEGER NOT NULL REFERENCES images(id), state TEXT NOT NULL,"
	" pid INTEGER, pid_start INTEGER, api_sock TEXT, error TEXT,"
	" created INTEGER NOT NULL, updated INTEGER NOT NULL, UNIQUE(tenant_id, name));"
	"CREATE TABLE quotas(tenant_id INTEGER PRIMARY KEY"
	" REFERENCES tenants(id) ON DELETE CASCADE, instances INTEGER NOT NULL,"
	" vcpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL);",
	/* 2: the audit log */
	"CREATE TABLE events(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, tenant_id INTEGER,"
	" who TEXT NOT NULL, action TEXT NOT NULL, target TEXT, result TEXT NOT NULL);"
	"CREATE INDEX events_tenant ON events(tenant_id, id);",
	/* 3: restart policies */
	"ALTER TABLE instances ADD COLUMN restart_policy TEXT NOT NULL DEFAULT 'never'"
	" CHECK(restart_policy IN ('never','on-failure','always'));"
	"ALTER TABLE instances ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;",
	/*
	 * 4: instance ids are never reused. An id names the instance's
	 * directory and its VMM's API socket; a reused one let a deleted
	 * instance's VMM, still dying, share them with a new instance's, and
	 * a restart could adopt the wrong one. SQLite cannot add AUTOINCREMENT
	 * to a table, so the table is copied into one that has it.
	 */
	"CREATE TABLE instances_v4(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" tenant_id INTEGER NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,"
	" flavor_id INTEGER NOT NULL REFERENCES flavors(id),"
	" image_id INTEGER NOT NULL REFERENCES images(id), state TEXT NOT NULL,"
	" pid INTEGER, pid_start INTEGER, api_sock TEXT, error TEXT,"
	" created INTEGER NOT NULL, updated INTEGER NOT NULL,"
	" restart_policy TEXT NOT NULL DEFAULT 'never'"
	" CHECK(restart_policy IN ('never','on-failure','always')),"
	" restarts INTEGER NOT NULL DEFAULT 0, UNIQUE(tenant_id, name));"
	"INSERT INTO instances_v4(id, tenant_id, name, flavor_id, image_id, state, pid,"
	" pid_start, api_sock, error, created, updated, restart_policy, restarts)"
	" SELECT id, tenant_id, name, flavor_id, image_id, state, pid, pid_start, api_sock,"
	" error, created, updated, restart_policy, restarts FROM instances;"
	"DROP TABLE instances;"
	"ALTER TABLE instances_v4 RENAME TO instances;",
	/*
	 * 5: instance networks and their ports. A port's address is unique in
	 * its network for as long as the port exists; the port goes with its
	 * instance, and a network with ports cannot go. Ids are never reused
	 * because they name host links (bn-ID, and MACs are derived from them).
	 */
	"CREATE TABLE networks(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL, cidr TEXT NOT NULL, bridge TEXT, created INTEGER NOT NULL,"
	" UNIQUE(tenant_id, name));"
	"CREATE TABLE ports(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" network_id INTEGER NOT NULL REFERENCES networks(id),"
	" instance_id INTEGER NOT NULL UNIQUE REFERENCES instances(id) ON DELETE CASCADE,"
	" mac TEXT NOT NULL, ip TEXT NOT NULL, created INTEGER NOT NULL,"
	" UNIQUE(network_id, ip));",
	/*
	 * 6: instance clones: the instance a clone was copied from. No
	 * foreign key: the source may be deleted while its clones live on,
	 * and where a clone came from stays part of its history.
	 */
	"ALTER TABLE instances ADD COLUMN cloned_from INTEGER;",
	/*
	 * 7: key pairs and what the metadata service hands an instance: its
	 * uuid, the public key copied at create time (a later keypair delete
	 * must not change a running instance) and its user data (base64).
	 */
	"CREATE TABLE keypairs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL, type TEXT NOT NULL, public_key TEXT NOT NULL,"
	" fingerprint TEXT NOT NULL, created INTEGER NOT NULL, UNIQUE(tenant_id, name));"
	"CREATE TABLE instance_meta(instance_id INTEGER PRIMARY KEY"
	" REFERENCES instances(id) ON DELETE CASCADE, uuid TEXT NOT NULL UNIQUE,"
	" key_name TEXT, public_key TEXT, user_data TEXT);",
	/*
	 * 8: firewall.c: a network may be isolated (no egress), and host ports
	 * forwarded to an instance's port. A host port is the whole host's,
	 * whichever tenant asks, so it is unique per protocol; forwards go
	 * with their instance.
	 */
	"ALTER TABLE networks ADD COLUMN isolated INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE forwards(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
	" proto TEXT NOT NULL CHECK(proto IN ('tcp','udp')),"
	" host_port INTEGER NOT NULL CHECK(host_port BETWEEN 1 AND 65535),"
	" guest_port INTEGER NOT NULL CHECK(guest_port BETWEEN 1 AND 65535),"
	" created INTEGER NOT NULL, UNIQUE(proto, host_port));",
	/*
	 * 9: raw images that boot: a raw image names the kernel image it
	 * boots with (which then cannot be deleted under it), and a kernel
	 * image may carry an initrd, a file of its own beside the kernel's.
	 */
	"ALTER TABLE images ADD COLUMN kernel_id INTEGER REFERENCES images(id);"
	"ALTER TABLE images ADD COLUMN initrd_path TEXT;"
	"ALTER TABLE images ADD COLUMN initrd_size INTEGER;"
	"ALTER TABLE images ADD COLUMN initrd_sha256 TEXT;",
	/*
	 * 10: an instance's disk chain (disk_layers.c): the jail path of its
	 * writable top, NULL for the first one (/disk.overlay), and the
	 * frozen layers under it, a JSON array of jail paths, bottom first.
	 * A snapshot for a clone freezes the top and the VM goes on in a new
	 * one, which its later cold boots must open.
	 */
	"ALTER TABLE instances ADD COLUMN disk_top TEXT;"
	"ALTER TABLE instances ADD COLUMN disk_layers TEXT;",
	/*
	 * 11 (renumbered at merge): server images (server_image.c). An image
	 * made from an instance's disk is "saving" while its file is written:
	 * it cannot boot nor be deleted, and one a restart finds is removed.
	 */
	"ALTER TABLE images ADD COLUMN status TEXT NOT NULL DEFAULT 'active'"
	" CHECK(status IN ('saving','active'));",
};

#define SQ_LATEST ((int)(sizeof(sq_migrations) / sizeof(sq_migrations[0])))

int store_sqlite_latest_version(void)
{
	return SQ_LATEST;
}

static const char *const sq_roles[] = {"admin", "member", "viewer"};

const char *store_role_name(enum store_role r)
{
	return sq_roles[r];
}

int store_role_parse(const char *s, enum store_role *out)
{
	for (unsigned int i = 0; i < 3; i++) {
		if (!strcmp(s, sq_roles[i])) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- statement helpers ---- */

/* Maps a failed step to an errno the daemon can turn into an HTTP status. */
static int sq_fail(sqlite3 *db, int rc, struct error *err)
{
	int code = EIO;

	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			code = EEXIST;
		else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			code = EBUSY;
		else
			code = EINVAL;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = EAGAIN;
		break;
	}
	return error_set(err, code, "database: %s", sqlite3_errmsg(db));
}

/*
 * Binds arguments by a format: 'i' int64, 'n' int64 with 0 as NULL (an
 * optional reference), 's' text (NULL as NULL).
 */
static int sq_bindv(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	int rc = SQLITE_OK;

	for (int i = 1; fmt && *fmt && rc == SQLITE_OK; fmt++, i++) {
		int64_t v;
		const char *s;

		switch (*fmt) {
		case 'i':
			rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		case 'n':
			v = va_arg(ap, int64_t);
			rc = v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
			break;
		case 's':
			s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, i);
			break;
		default:
			rc = SQLITE_MISUSE;
		}
	}
	return rc;
}

static int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, const char *fmt, va_list ap,
		      struct error *err)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	if (rc != SQLITE_OK)
		return sq_fail(db, rc, err);
	rc = sq_bindv(*st, fmt, ap);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(*st);
		return sq_fail(db, rc, err);
	}
	return 0;
}

static json_t *sq_row_json(sqlite3_stmt *st)
{
	json_t *o = json_object();

	for (int c = 0; o && c < sqlite3_column_count(st); c++) {
		const char *name = sqlite3_column_name(st, c);
		json_t *v;

		switch (sqlite3_column_type(st, c)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(st, c));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(st, c));
			break;
		case SQLITE_TEXT:
			v = json_string((const char *)sqlite3_column_text(st, c));
			break;
		default:
			v = json_null();
		}
		json_object_set_new(o, name, v);
	}
	return o;
}

/* Runs a statement that returns no rows; *changes gets how many rows it touched. */
static int sq_exec(sqlite3 *db, struct error *err, int *changes, const char *sql, const char *fmt,
		   ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sq_prepare(db, sql, &st, fmt, ap, err);
	va_end(ap);
	if (rc)
		return rc;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sq_fail(db, sqlite3_extended_errcode(db), err);
	if (changes)
		*changes = sqlite3_changes(db);
	return 0;
}

/* Runs a query; every row as an object into a new array *out. */
static int sq_rows(sqlite3 *db, struct error *err, json_t **out, const char *sql, const char *fmt,
		   ...)
{
	sqlite3_stmt *st;
	va_list ap;
	json_t *arr;
	int rc;

	va_start(ap, fmt);
	rc = sq_prepare(db, sql, &st, fmt, ap, err);
	va_end(ap);
	if (rc)
		return rc;
	arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, sq_row_json(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return sq_fail(db, sqlite3_extended_errcode(db), err);
	}
	*out = arr;
	return 0;
}

/* The first row of a query in *out; -ENOENT (with what) when there is none. */
static int sq_row(sqlite3 *db, struct error *err, json_t **out, const char *what, const char *sql,
		  const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sq_prepare(db, sql, &st, fmt, ap, err);
	va_end(ap);
	if (rc)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sq_row_json(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return error_set(err, ENOENT, "no such %s", what);
	return sq_fail(db, sqlite3_extended_errcode(db), err);
}

static int sq_begin(sqlite3 *db, struct error *err)
{
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sq_fail(db, rc, err);
}

/* Commits when ret is 0, else rolls back; returns ret or the commit's failure. */
static int sq_end(sqlite3 *db, int ret, struct error *err)
{
	int rc;

	if (ret) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_fail(db, rc, err);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return ret;
}

static int64_t sq_now(void)
{
	return (int64_t)time(NULL);
}

static int64_t sq_int(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* ---- schema ---- */

static int sq_user_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int sq_migrate(sqlite3 *db, int target, struct error *err)
{
	int v = sq_user_version(db);
	char bump[64];

	if (v < 0)
		return error_set(err, EIO, "database: cannot read the schema version: %s",
				 sqlite3_errmsg(db));
	if (v > SQ_LATEST)
		return error_set(err, EPROTO,
				 "database schema version %d is newer than this bunshind's (%d)", v,
				 SQ_LATEST);
	for (; v < target; v++) {
		int ret = sq_begin(db, err);

		if (ret)
			return ret;
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(db, sq_migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, bump, NULL, NULL, NULL) != SQLITE_OK) {
			error_set(err, EIO, "database: migration to version %d failed: %s", v + 1,
				  sqlite3_errmsg(db));
			return sq_end(db, -EIO, err);
		}
		ret = sq_end(db, 0, err);
		if (ret)
			return ret;
	}
	return 0;
}

static int sq_configure(sqlite3 *db, struct error *err)
{
	static const char *const pragmas =
		"PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

	sqlite3_busy_timeout(db, SQ_BUSY_TIMEOUT_MS);
	if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
		return error_set(err, EIO, "database: %s", sqlite3_errmsg(db));
	return 0;
}

/* ---- operations ---- */

static void sq_close(struct store *s)
{
	sqlite3_close(sq_db(s));
	free(s);
}

static int sq_schema_version(struct store *s)
{
	return sq_user_version(sq_db(s));
}

static int sq_is_empty(struct store *s, bool *empty, struct error *err)
{
	json_t *row;
	int ret = sq_row(sq_db(s), err, &row, "count", "SELECT count(*) AS n FROM tenants", NULL);

	if (ret)
		return ret;
	*empty = sq_int(row, "n") == 0;
	json_decref(row);
	return 0;
}

static int sq_token_lookup(struct store *s, const char *hash, struct store_principal *out,
			   struct error *err)
{
	json_t *row;
	int ret = sq_row(sq_db(s), err, &row, "token",
			 "SELECT u.id AS uid, u.name AS user, u.role, t.id AS tid, t.name AS tenant"
			 " FROM tokens k JOIN users u ON u.id = k.user_id"
			 " JOIN tenants t ON t.id = u.tenant_id WHERE k.hash = ?",
			 "s", hash);

	if (ret)
		return ret;
	out->user_id = sq_int(row, "uid");
	out->tenant_id = sq_int(row, "tid");
	snprintf(out->user, sizeof(out->user), "%s",
		 json_string_value(json_object_get(row, "user")));
	snprintf(out->tenant, sizeof(out->tenant), "%s",
		 json_string_value(json_object_get(row, "tenant")));
	ret = store_role_parse(json_string_value(json_object_get(row, "role")), &out->role);
	json_decref(row);
	return ret ? error_set(err, EIO, "database: a user has an unknown role") : 0;
}

static int sq_tenant_create(struct store *s, const char *name, const struct store_quota *q,
			    int64_t *id, struct error *err)
{
	sqlite3 *db = sq_db(s);
	int ret = sq_begin(db, err);

	if (ret)
		return ret;
	ret = sq_exec(db, err, NULL, "INSERT INTO tenants(name, created) VALUES(?, ?)", "si", name,
		      sq_now());
	if (!ret) {
		*id = sqlite3_last_insert_rowid(db);
		ret = sq_exec(db, err, NULL,
			      "INSERT INTO quotas(tenant_id, instances, vcpus, ram_mib)"
			      " VALUES(?, ?, ?, ?)",
			      "iiii", *id, q->instances, q->vcpus, q->ram_mib);
	}
	if (ret == -EEXIST)
		error_set(err, EEXIST, "tenant %s already exists", name);
	return sq_end(db, ret, err);
}

#define SQ_TENANT_SELECT                                                                           \
	"SELECT t.id, t.name, t.created, q.instances AS quota_instances,"                          \
	" q.vcpus AS quota_vcpus, q.ram_mib AS quota_ram_mib FROM tenants t"                       \
	" LEFT JOIN quotas q ON q.tenant_id = t.id"

static int sq_tenant_get(struct store *s, const char *name, json_t **out, struct error *err)
{
	return sq_row(sq_db(s), err, out, "tenant", SQ_TENANT_SELECT " WHERE t.name = ?", "s",
		      name);
}

static int sq_tenant_list(struct store *s, json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out, SQ_TENANT_SELECT " ORDER BY t.id", NULL);
}

static int sq_tenant_delete(struct store *s, const char *name, struct error *err)
{
	int changes = 0;
	int ret = sq_exec(sq_db(s), err, &changes, "DELETE FROM tenants WHERE name = ?", "s", name);

	if (ret == -EBUSY)
		return error_set(err, EBUSY,
				 "tenant %s still has users, flavors, images or instances", name);
	if (!ret && !changes)
		return error_set(err, ENOENT, "no such tenant");
	return ret;
}

static int sq_user_create(struct store *s, int64_t tenant_id, const char *name,
			  enum store_role role, int64_t *id, struct error *err)
{
	sqlite3 *db = sq_db(s);
	int ret = sq_exec(db, err, NULL,
			  "INSERT INTO users(tenant_id, name, role, created) VALUES(?, ?, ?, ?)",
			  "issi", tenant_id, name, store_role_name(role), sq_now());

	if (ret == -EEXIST)
		return error_set(err, EEXIST, "user %s already exists", name);
	if (!ret)
		*id = sqlite3_last_insert_rowid(db);
	return ret;
}

#define SQ_USER_SELECT                                                                             \
	"SELECT u.id, u.name, u.role, t.name AS tenant, u.tenant_id, u.created FROM users u"       \
	" JOIN tenants t ON t.id = u.tenant_id"

static int sq_user_list(struct store *s, int64_t tenant_id, json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out,
		       SQ_USER_SELECT " WHERE ?1 IS NULL OR u.tenant_id = ?1 ORDER BY u.id", "n",
		       tenant_id);
}

static int sq_user_get(struct store *s, const char *name, json_t **out, struct error *err)
{
	return sq_row(sq_db(s), err, out, "user", SQ_USER_SELECT " WHERE u.name = ?", "s", name);
}

/* Deletes row id of table (a name from this file, never from a request). */
static int sq_delete_id(struct store *s, const char *table, const char *what, int64_t id,
			struct error *err)
{
	char sql[128];
	int changes = 0, ret;

	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?", table);
	ret = sq_exec(sq_db(s), err, &changes, sql, "i", id);
	if (ret == -EBUSY)
		return error_set(err, EBUSY, "the %s is in use by instances", what);
	if (!ret && !changes)
		return error_set(err, ENOENT, "no such %s", what);
	return ret;
}

static int sq_user_delete(struct store *s, int64_t id, struct error *err)
{
	return sq_delete_id(s, "users", "user", id, err);
}

static int sq_flavor_delete(struct store *s, int64_t id, struct error *err)
{
	return sq_delete_id(s, "flavors", "flavor", id, err);
}

static int sq_image_delete(struct store *s, int64_t id, struct error *err)
{
	int ret = sq_delete_id(s, "images", "image", id, err);

	/* The foreign key that held it: an instance's, or a raw image's kernel_id. */
	if (ret == -EBUSY)
		return error_set(err, EBUSY,
				 "the image is in use by instances or by raw images that boot"
				 " with it");
	return ret;
}

static int sq_token_create(struct store *s, int64_t user_id, const char *hash,
			   const char *description, int64_t *id, struct error *err)
{
	sqlite3 *db = sq_db(s);
	int ret = sq_exec(
		db, err, NULL,
		"INSERT INTO tokens(user_id, hash, description, created) VALUES(?, ?, ?, ?)",
		"issi", user_id, hash, description, sq_now());

	if (!ret)
		*id = sqlite3_last_insert_rowid(db);
	return ret;
}

static int sq_token_list(struct store *s, int64_t tenant_id, json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out,
		       "SELECT k.id, u.name AS user, t.name AS tenant, k.description, k.created"
		       " FROM tokens k JOIN users u ON u.id = k.user_id"
		       " JOIN tenants t ON t.id = u.tenant_id"
		       " WHERE ?1 IS NULL OR u.tenant_id = ?1 ORDER BY k.id",
		       "n", tenant_id);
}

static int sq_token_delete(struct store *s, int64_t tenant_id, int64_t id, struct error *err)
{
	int changes = 0;
	int ret = sq_exec(sq_db(s), err, &changes,
			  "DELETE FROM tokens WHERE id = ?1 AND (?2 IS NULL OR user_id IN"
			  " (SELECT id FROM users WHERE tenant_id = ?2))",
			  "in", id, tenant_id);

	if (!ret && !changes)
		return error_set(err, ENOENT, "no such token");
	return ret;
}

static int sq_flavor_create(struct store *s, const struct store_flavor_new *f, int64_t *id,
			    struct error *err)
{
	sqlite3 *db = sq_db(s);
	int ret = sq_exec(db, err, NULL,
			  "INSERT INTO flavors(name, vcpus, ram_mib, disk_gib, tenant_id, created)"
			  " VALUES(?, ?, ?, ?, ?, ?)",
			  "siiini", f->name, f->vcpus, f->ram_mib, f->disk_gib, f->tenant_id,
			  sq_now());

	if (ret == -EEXIST)
		return error_set(err, EEXIST, "flavor %s already exists", f->name);
	if (!ret)
		*id = sqlite3_last_insert_rowid(db);
	return ret;
}

#define SQ_FLAVOR_SELECT                                                                           \
	"SELECT f.id, f.name, f.vcpus, f.ram_mib, f.disk_gib, t.name AS tenant, f.created"         \
	" FROM flavors f LEFT JOIN tenants t ON t.id = f.tenant_id"
/* Public rows and the tenant's own; everything for tenant NULL (the operator). */
#define SQ_VISIBLE(alias) " (?1 IS NULL OR " alias ".tenant_id IS NULL OR " alias ".tenant_id = ?1)"

static int sq_flavor_list(struct store *s, int64_t tenant_id, json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out,
		       SQ_FLAVOR_SELECT
		       " WHERE" SQ_VISIBLE("f") " ORDER BY f.vcpus, f.ram_mib, f.id",
		       "n", tenant_id);
}

/* The tenant's own flavor of that name before a public one. */
static int sq_flavor_get(struct store *s, int64_t tenant_id, const char *name, json_t **out,
			 struct error *err)
{
	return sq_row(sq_db(s), err, out, "flavor",
		      SQ_FLAVOR_SELECT
		      " WHERE" SQ_VISIBLE("f") " AND f.name = ?2"
					       " ORDER BY f.tenant_id IS NULL LIMIT 1",
		      "ns", tenant_id, name);
}

static int sq_image_create(struct store *s, const struct store_image_new *im, int64_t *id,
			   struct error *err)
{
	sqlite3 *db = sq_db(s);
	int ret = sq_exec(db, err, NULL,
			  "INSERT INTO images(name, kind, path, cmdline, size, sha256, tenant_id,"
			  " created, kernel_id, initrd_path, initrd_size, initrd_sha256)"
			  " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			  "ssssisninsns", im->name, im->kind, im->path, im->cmdline, im->size,
			  im->sha256, im->tenant_id, sq_now(), im->kernel_id, im->initrd_path,
			  im->initrd_size, im->initrd_sha256);

	if (ret == -EEXIST)
		return error_set(err, EEXIST, "image %s already exists", im->name);
	if (!ret)
		*id = sqlite3_last_insert_rowid(db);
	return ret;
}

#define SQ_IMAGE_SELECT                                                                            \
	"SELECT i.id, i.name, i.kind, i.path, i.cmdline, i.size, i.sha256, t.name AS tenant,"      \
	" i.created, k.name AS kernel, i.initrd_path, i.initrd_size, i.initrd_sha256,"             \
	" i.status"                                                                                \
	" FROM images i LEFT JOIN tenants t ON t.id = i.tenant_id"                                 \
	" LEFT JOIN images k ON k.id = i.kernel_id"

static int sq_image_list(struct store *s, int64_t tenant_id, json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out,
		       SQ_IMAGE_SELECT " WHERE" SQ_VISIBLE("i") " ORDER BY i.id", "n", tenant_id);
}

static int sq_image_get(struct store *s, int64_t tenant_id, const char *name, json_t **out,
			struct error *err)
{
	return sq_row(sq_db(s), err, out, "image",
		      SQ_IMAGE_SELECT
		      " WHERE" SQ_VISIBLE("i") " AND i.name = ?2"
					       " ORDER BY i.tenant_id IS NULL LIMIT 1",
		      "ns", tenant_id, name);
}

/* What instances hold, for one tenant (tenant_id) or the whole host (0). */
static int sq_held(sqlite3 *db, int64_t tenant_id, struct store_quota *held, struct error *err)
{
	json_t *row;
	int ret =
		sq_row(db, err, &row, "usage",
		       "SELECT count(*) AS n, coalesce(sum(f.vcpus), 0) AS vcpus,"
		       " coalesce(sum(f.ram_mib), 0) AS ram FROM instances i"
		       " JOIN flavors f ON f.id = i.flavor_id WHERE ?1 IS NULL OR i.tenant_id = ?1",
		       "n", tenant_id);

	if (ret)
		return ret;
	*held = (struct store_quota){sq_int(row, "n"), sq_int(row, "vcpus"), sq_int(row, "ram")};
	json_decref(row);
	return 0;
}

static int sq_quota_read(sqlite3 *db, int64_t tenant_id, struct store_quota *q, struct error *err)
{
	json_t *row;
	int ret = sq_row(db, err, &row, "tenant",
			 "SELECT instances, vcpus, ram_mib FROM quotas WHERE tenant_id = ?", "i",
			 tenant_id);

	if (ret)
		return ret;
	*q = (struct store_quota){sq_int(row, "instances"), sq_int(row, "vcpus"),
				  sq_int(row, "ram_mib")};
	json_decref(row);
	return 0;
}

/* Inside the create transaction: would one more instance of f fit? */
static int sq_admit(sqlite3 *db, const struct store_instance_new *in, const json_t *f,
		    const struct store_capacity *cap, struct error *err)
{
	int64_t vcpus = sq_int(f, "vcpus"), ram = sq_int(f, "ram_mib");
	struct store_quota q, held, host;
	int ret;

	if ((ret = sq_quota_read(db, in->tenant_id, &q, err)) ||
	    (ret = sq_held(db, in->tenant_id, &held, err)))
		return ret;
	if (held.instances + 1 > q.instances)
		return error_set(err, EDQUOT, "quota exceeded: instances (%lld of %lld in use)",
				 (long long)held.instances, (long long)q.instances);
	if (held.vcpus + vcpus > q.vcpus)
		return error_set(err, EDQUOT,
				 "quota exceeded: vcpus (%lld of %lld in use, %lld asked)",
				 (long long)held.vcpus, (long long)q.vcpus, (long long)vcpus);
	if (held.ram_mib + ram > q.ram_mib)
		return error_set(err, EDQUOT,
				 "quota exceeded: ram_mib (%lld of %lld in use, %lld asked)",
				 (long long)held.ram_mib, (long long)q.ram_mib, (long long)ram);
	if (!cap)
		return 0;
	if ((ret = sq_held(db, 0, &host, err)))
		return ret;
	if (host.vcpus + vcpus > cap->vcpus || host.ram_mib + ram > cap->ram_mib)
		return error_set(
			err, ENOSPC,
			"host capacity exceeded (vcpus %lld+%lld of %lld, ram_mib %lld+%lld"
			" of %lld)",
			(long long)host.vcpus, (long long)vcpus, (long long)cap->vcpus,
			(long long)host.ram_mib, (long long)ram, (long long)cap->ram_mib);
	return 0;
}

/* store_sqlite_net.inc: the port of a new instance, inside its create transaction. */
static int sq_port_add(sqlite3 *db, int64_t network_id, int64_t instance_id, struct error *err);
/* store_sqlite_meta.inc: its uuid, key and user data, in the same transaction. */
static int sq_meta_add(sqlite3 *db, int64_t id, const struct store_instance_meta *meta,
		       struct error *err);

static int sq_instance_create_meta(struct store *s, const struct store_instance_new *in,
				   const struct store_capacity *cap, int64_t network_id,
				   const struct store_instance_meta *meta, int64_t *id,
				   struct error *err)
{
	sqlite3 *db = sq_db(s);
	json_t *f = NULL;
	int ret = sq_begin(db, err);

	if (ret)
		return ret;
	ret = sq_row(db, err, &f, "flavor", "SELECT vcpus, ram_mib FROM flavors WHERE id = ?", "i",
		     in->flavor_id);
	if (!ret)
		ret = sq_admit(db, in, f, cap, err);
	json_decref(f);
	if (!ret)
		ret = sq_exec(db, err, NULL,
			      "INSERT INTO instances(tenant_id, name, flavor_id, image_id, state,"
			      " created, updated, restart_policy)"
			      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, coalesce(?7, 'never'))",
			      "isiisis", in->tenant_id, in->name, in->flavor_id, in->image_id,
			      in->state, sq_now(), in->restart_policy);
	if (ret == -EEXIST)
		error_set(err, EEXIST, "instance %s already exists", in->name);
	if (!ret)
		*id = sqlite3_last_insert_rowid(db);
	if (!ret && network_id)
		ret = sq_port_add(db, network_id, *id, err);
	if (!ret)
		ret = sq_meta_add(db, *id, meta, err);
	return sq_end(db, ret, err);
}

static int sq_instance_create_port(struct store *s, const struct store_instance_new *in,
				   const struct store_capacity *cap, int64_t network_id,
				   int64_t *id, struct error *err)
{
	return sq_instance_create_meta(s, in, cap, network_id, NULL, id, err);
}

static int sq_instance_create(struct store *s, const struct store_instance_new *in,
			      const struct store_capacity *cap, int64_t *id, struct error *err)
{
	return sq_instance_create_port(s, in, cap, 0, id, err);
}

#define SQ_INSTANCE_SELECT                                                                         \
	"SELECT i.id, i.name, t.name AS tenant, i.tenant_id, f.name AS flavor, f.vcpus,"           \
	" f.ram_mib, f.disk_gib, im.name AS image, im.kind AS image_kind,"                         \
	" im.path AS image_path, im.cmdline AS image_cmdline, i.state, i.pid, i.pid_start,"        \
	" i.api_sock, i.error, i.restart_policy, i.restarts, i.created, i.updated,"                \
	" i.cloned_from, i.disk_top, i.disk_layers,"                                               \
	" pn.name AS network, p.network_id, p.mac, p.ip, pn.bridge, pn.cidr AS network_cidr,"      \
	" bk.path AS kernel_path, bk.cmdline AS kernel_cmdline,"                                   \
	" coalesce(bk.initrd_path, im.initrd_path) AS initrd_path"                                 \
	" FROM instances i"                                                                        \
	" JOIN tenants t ON t.id = i.tenant_id JOIN flavors f ON f.id = i.flavor_id"               \
	" JOIN images im ON im.id = i.image_id"                                                    \
	" LEFT JOIN ports p ON p.instance_id = i.id LEFT JOIN networks pn ON pn.id = p.network_id" \
	" LEFT JOIN images bk ON bk.id = im.kernel_id"

static int sq_instance_list(struct store *s, int64_t tenant_id, json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out,
		       SQ_INSTANCE_SELECT " WHERE ?1 IS NULL OR i.tenant_id = ?1 ORDER BY i.id",
		       "n", tenant_id);
}

static bool sq_is_id(const char *ref)
{
	if (!*ref || strlen(ref) > 18)
		return false;
	for (const char *p = ref; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
	}
	return true;
}

static int sq_instance_get(struct store *s, int64_t tenant_id, const char *ref, json_t **out,
			   struct error *err)
{
	if (sq_is_id(ref))
		return sq_row(sq_db(s), err, out, "instance",
			      SQ_INSTANCE_SELECT " WHERE (?1 IS NULL OR i.tenant_id = ?1)"
						 " AND i.id = ?2",
			      "ni", tenant_id, (int64_t)strtoll(ref, NULL, 10));
	return sq_row(sq_db(s), err, out, "instance",
		      SQ_INSTANCE_SELECT " WHERE (?1 IS NULL OR i.tenant_id = ?1) AND i.name = ?2"
					 " ORDER BY i.id LIMIT 1",
		      "ns", tenant_id, ref);
}

static int sq_instance_set_run(struct store *s, int64_t id, const struct store_instance_run *run,
			       struct error *err)
{
	int changes = 0;
	int ret = sq_exec(sq_db(s), err, &changes,
			  "UPDATE instances SET state = ?, pid = ?, pid_start = ?, api_sock = ?,"
			  " error = ?, updated = ? WHERE id = ?",
			  "snnssii", run->state, run->pid, (int64_t)run->pid_start, run->api_sock,
			  run->error, sq_now(), id);

	if (!ret && !changes)
		return error_set(err, ENOENT, "no such instance");
	return ret;
}

static int sq_instance_set_state(struct store *s, int64_t id, const char *from, const char *to,
				 const char *error, struct error *err)
{
	int changes = 0;
	int ret = sq_exec(sq_db(s), err, &changes,
			  "UPDATE instances SET state = ?1, error = ?2, updated = ?3"
			  " WHERE id = ?4 AND (?5 IS NULL OR state = ?5)",
			  "ssiis", to, error, sq_now(), id, from);

	if (!ret && !changes)
		return error_set(err, EAGAIN, "the instance is not %s", from ? from : "there");
	return ret;
}

static int sq_instance_count_restart(struct store *s, int64_t id, bool reset, struct error *err)
{
	return sq_exec(sq_db(s), err, NULL,
		       "UPDATE instances SET restarts = CASE WHEN ?1 THEN 0 ELSE restarts + 1 END"
		       " WHERE id = ?2",
		       "ii", (int64_t)reset, id);
}

static int sq_instance_delete(struct store *s, int64_t id, struct error *err)
{
	int changes = 0;
	int ret = sq_exec(sq_db(s), err, &changes, "DELETE FROM instances WHERE id = ?", "i", id);

	if (!ret && !changes)
		return error_set(err, ENOENT, "no such instance");
	return ret;
}

#define SQ_USAGE_SELECT                                                                            \
	"SELECT t.name AS tenant, q.instances AS quota_instances, q.vcpus AS quota_vcpus,"         \
	" q.ram_mib AS quota_ram_mib, count(i.id) AS instances,"                                   \
	" coalesce(sum(f.vcpus), 0) AS vcpus, coalesce(sum(f.ram_mib), 0) AS ram_mib"              \
	" FROM tenants t JOIN quotas q ON q.tenant_id = t.id"                                      \
	" LEFT JOIN instances i ON i.tenant_id = t.id LEFT JOIN flavors f ON f.id = i.flavor_id"

static int sq_quota_get(struct store *s, int64_t tenant_id, json_t **out, struct error *err)
{
	return sq_row(sq_db(s), err, out, "tenant", SQ_USAGE_SELECT " WHERE t.id = ? GROUP BY t.id",
		      "i", tenant_id);
}

static int sq_quota_set(struct store *s, int64_t tenant_id, const struct store_quota *q,
			struct error *err)
{
	int changes = 0;
	int ret = sq_exec(
		sq_db(s), err, &changes,
		"UPDATE quotas SET instances = ?, vcpus = ?, ram_mib = ? WHERE tenant_id = ?",
		"iiii", q->instances, q->vcpus, q->ram_mib, tenant_id);

	if (!ret && !changes)
		return error_set(err, ENOENT, "no such tenant");
	return ret;
}

static int sq_usage(struct store *s, json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out, SQ_USAGE_SELECT " GROUP BY t.id ORDER BY t.id", NULL);
}

static int sq_event_add(struct store *s, const struct store_event *ev, struct error *err)
{
	return sq_exec(sq_db(s), err, NULL,
		       "INSERT INTO events(at, tenant_id, who, action, target, result)"
		       " VALUES(?, ?, ?, ?, ?, ?)",
		       "inssss", sq_now(), ev->tenant_id, ev->who, ev->action, ev->target,
		       ev->result);
}

static int sq_event_list(struct store *s, int64_t tenant_id, const char *target, int limit,
			 json_t **out, struct error *err)
{
	return sq_rows(sq_db(s), err, out,
		       "SELECT e.id, e.at, t.name AS tenant, e.who, e.action, e.target, e.result"
		       " FROM events e LEFT JOIN tenants t ON t.id = e.tenant_id"
		       " WHERE (?1 IS NULL OR e.tenant_id = ?1) AND (?3 IS NULL OR e.target = ?3)"
		       " ORDER BY e.id DESC LIMIT ?2",
		       "nis", tenant_id, (int64_t)limit, target);
}

#include "store_sqlite_net.inc"
#include "store_sqlite_life.inc"
#include "store_sqlite_clone.inc"
#include "store_sqlite_meta.inc"
#include "store_sqlite_fw.inc"
#include "store_sqlite_ops.inc"
#include "store_sqlite_snapimage.inc"

static const struct store_ops sq_ops = {
	.close = sq_close,
	.schema_version = sq_schema_version,
	.is_empty = sq_is_empty,
	.token_lookup = sq_token_lookup,
	.tenant_create = sq_tenant_create,
	.tenant_get = sq_tenant_get,
	.tenant_list = sq_tenant_list,
	.tenant_delete = sq_tenant_delete,
	.user_create = sq_user_create,
	.user_list = sq_user_list,
	.user_get = sq_user_get,
	.user_delete = sq_user_delete,
	.token_create = sq_token_create,
	.token_list = sq_token_list,
	.token_delete = sq_token_delete,
	.flavor_create = sq_flavor_create,
	.flavor_list = sq_flavor_list,
	.flavor_get = sq_flavor_get,
	.flavor_delete = sq_flavor_delete,
	.image_create = sq_image_create,
	.image_list = sq_image_list,
	.image_get = sq_image_get,
	.image_delete = sq_image_delete,
	.instance_create = sq_instance_create,
	.instance_list = sq_instance_list,
	.instance_get = sq_instance_get,
	.instance_set_run = sq_instance_set_run,
	.instance_set_state = sq_instance_set_state,
	.instance_count_restart = sq_instance_count_restart,
	.instance_delete = sq_instance_delete,
	.quota_get = sq_quota_get,
	.quota_set = sq_quota_set,
	.usage = sq_usage,
	.event_add = sq_event_add,
	.event_list = sq_event_list,
	.instance_create_port = sq_instance_create_port,
	.network_create = sq_network_create,
	.network_list = sq_network_list,
	.network_get = sq_network_get,
	.network_delete = sq_network_delete,
	.port_list = sq_port_list,
	.instance_resize = sq_instance_resize,
	.instance_clone = sq_instance_clone,
	.keypair_create = sq_keypair_create,
	.keypair_list = sq_keypair_list,
	.keypair_get = sq_keypair_get,
	.keypair_delete = sq_keypair_delete,
	.instance_meta_lookup = sq_instance_meta_lookup,
	.instance_create_meta = sq_instance_create_meta,
	.network_set_isolated = sq_network_set_isolated,
	.forward_create = sq_forward_create,
	.forward_list = sq_forward_list,
	.forward_delete = sq_forward_delete,
	.image_set_initrd = sq_image_set_initrd,
	.quota_move = sq_quota_move,
	.instance_set_disk = sq_instance_set_disk,
	.image_create_saving = sq_image_create_saving,
	.image_set_active = sq_image_set_active,
	.image_list_saving = sq_image_list_saving,
	.instance_rebuild = sq_instance_rebuild,
};

struct store *store_sqlite_open_version(const char *path, int version, struct error *err)
{
	struct sq_store *s;
	int rc;

	if (version < 0 || version > SQ_LATEST) {
		error_set(err, EINVAL, "no schema version %d", version);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	s->base.ops = &sq_ops;
	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		error_set(err, EIO, "%s: %s", path,
			  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	if (sq_configure(s->db, err) || sq_migrate(s->db, version, err)) {
		error_wrap(err, "%s", path);
		goto fail;
	}
	return &s->base;
fail:
	sqlite3_close(s->db);
	free(s);
	return NULL;
}

struct store *store_sqlite_open(const char *path, struct error *err)
{
	return store_sqlite_open_version(path, SQ_LATEST, err);
}
