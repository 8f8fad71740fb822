// SPDX-License-Identifier: MIT
/*
 * firewall.h's tables, applied through libnftables: the text of
 * firewall_rules.c in one nft_run_cmd_from_buffer(), which the kernel
 * takes as one transaction (the old tables deleted and the new ones made,
 * or a batch of element lines, or nothing changed). fw_lock serialises
 * both kinds of update, and each reads the store under it: an element
 * update never lands on top of a rebuild that read the store after it.
 * The tables stay when bunshind exits, with or without
 * --stop-vms-on-exit: whatever VMs still run keep their rules, and the
 * next start rebuilds them from the store anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "daemon.h"
#include "firewall.h"
#include "netroute.h"

static pthread_mutex_t fw_lock = PTHREAD_MUTEX_INITIALIZER;

/* A sorted set of ids. */
struct fw_ids {
	int64_t *v;
	size_t n, cap;
};

/*
 * Under fw_lock: whether the last rebuild made the tables (element
 * updates need them), the networks it made rules for, and the instances
 * whose port elements it or an update since put there: a VMM start
 * checks here instead of nftables.
 */
static struct {
	bool built;
	struct fw_ids nets, ports;
} fw_known;

/* Where id is in ids, or would go. */
static size_t fw_ids_at(const struct fw_ids *ids, int64_t id)
{
	size_t lo = 0, hi = ids->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ids->v[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool fw_ids_has(const struct fw_ids *ids, int64_t id)
{
	size_t at = fw_ids_at(ids, id);

	return fw_known.built && at < ids->n && ids->v[at] == id;
}

/* Adds id when memory allows: one forgotten only costs a later update. */
static void fw_ids_add(struct fw_ids *ids, int64_t id)
{
	size_t at = fw_ids_at(ids, id);

	if (at < ids->n && ids->v[at] == id)
		return;
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? 2 * ids->cap : 64;
		int64_t *v = realloc(ids->v, cap * sizeof(*v));

		if (!v)
			return;
		ids->v = v;
		ids->cap = cap;
	}
	memmove(&ids->v[at + 1], &ids->v[at], (ids->n - at) * sizeof(*ids->v));
	ids->v[at] = id;
	ids->n++;
}

static void fw_ids_del(struct fw_ids *ids, int64_t id)
{
	size_t at = fw_ids_at(ids, id);

	if (at >= ids->n || ids->v[at] != id)
		return;
	memmove(&ids->v[at], &ids->v[at + 1], (ids->n - at - 1) * sizeof(*ids->v));
	ids->n--;
}

/* After a rebuild from nets and ports (NULL: it failed or removed the tables). */
static void fw_known_reset(const json_t *nets, const json_t *ports)
{
	const json_t *row;
	size_t i;

	fw_known.nets.n = fw_known.ports.n = 0;
	fw_known.built = nets != NULL;
	json_array_foreach(nets, i, row)
		fw_ids_add(&fw_known.nets, json_integer_value(json_object_get(row, "id")));
	json_array_foreach(ports, i, row)
	{
		char *cmds = NULL;

		/* A row that does not parse has no element: not known, refused at start. */
		if (!fw_port_elements(row, true, &cmds))
			fw_ids_add(&fw_known.ports,
				   json_integer_value(json_object_get(row, "instance_id")));
		free(cmds);
	}
}

/* The first line of libnftables' error text, for a one-line message. */
static const char *fw_first_line(const char *text, char *buf, size_t size)
{
	if (!text || !*text)
		return "no reason given";
	snprintf(buf, size, "%.*s", (int)strcspn(text, "\n"), text);
	return buf;
}

/* Runs nft commands; *out (malloc'd, may be NULL) gets their JSON output when asked for. */
static int fw_nft(const char *cmds, bool json, char **out, struct error *err)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	char line[256];
	int ret = 0;

	if (!nft)
		return error_set(err, ENOMEM, "nftables: cannot make a context");
	if (json)
		nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON);
	if (nft_ctx_buffer_output(nft) || nft_ctx_buffer_error(nft)) {
		nft_ctx_free(nft);
		return error_set(err, ENOMEM, "nftables: cannot buffer its output");
	}
	if (nft_run_cmd_from_buffer(nft, cmds))
		ret = error_set(err, EIO, "nftables: %s",
				fw_first_line(nft_ctx_get_error_buffer(nft), line, sizeof(line)));
	else if (out)
		*out = strdup(nft_ctx_get_output_buffer(nft) ?: "");
	nft_ctx_free(nft);
	return ret;
}

static int fw_ip_forward(struct error *err);

/*
 * With no network there is nothing to filter: the tables go (when there),
 * and a bunshind that never had a network (an API-only test, a fresh
 * host) never touches its namespace's nftables or forwarding at all.
 */
static int fw_remove(struct error *err)
{
	struct error lerr = {0};
	char *list = NULL;
	int ret = 0;

	/* Unreadable (no CAP_NET_ADMIN, no nf_tables): then no table of ours is there either. */
	if (fw_nft("list tables", false, &list, &lerr))
		return 0;
	if (strstr(list, "table inet bunshin\n"))
		ret = fw_nft("delete table inet bunshin", false, NULL, err);
	if (!ret && strstr(list, "table bridge bunshin\n"))
		ret = fw_nft("delete table bridge bunshin", false, NULL, err);
	free(list);
	return ret;
}

static int fw_sync_locked(struct store *s, struct error *err)
{
	static bool forwarding;
	json_t *nets = NULL, *ports = NULL, *fwds = NULL;
	char *text = NULL;
	int skipped = 0;
	int ret = STORE(s, network_list, 0, &nets, err);

	if (!ret && !json_array_size(nets)) {
		json_decref(nets);
		ret = fw_remove(err);
		/* No tables: the first port (with the first network) rebuilds them. */
		fw_known_reset(NULL, NULL);
		return ret;
	}
	if (!ret && !forwarding)
		forwarding = !(ret = fw_ip_forward(err));
	ret = ret ?: STORE(s, port_list, 0, &ports, err);
	ret = ret ?: STORE(s, forward_list, 0, &fwds, err);
	if (!ret && !(text = fw_ruleset(nets, ports, fwds, &skipped)))
		ret = error_set(err, ENOMEM, "out of memory");
	if (skipped)
		log_warn("firewall: %d store rows that do not parse left out", skipped);
	ret = ret ?: fw_nft(text, false, NULL, err);
	fw_known_reset(ret ? NULL : nets, ret ? NULL : ports);
	free(text);
	json_decref(nets);
	json_decref(ports);
	json_decref(fwds);
	return ret;
}

int fw_sync(const struct daemon *d, struct store *s, struct error *err)
{
	struct store *own = s ? NULL : pool_get(d->pool);
	int ret;

	pthread_mutex_lock(&fw_lock);
	ret = fw_sync_locked(s ?: own, err);
	pthread_mutex_unlock(&fw_lock);
	if (own)
		pool_put(d->pool, own);
	if (ret)
		error_wrap(err, "firewall");
	return ret;
}

void fw_changed(const struct daemon *d, struct store *s)
{
	struct error err = {0};

	if (fw_sync(d, s, &err))
		log_error("%s", err.msg);
}

/*
 * Element commands, or a rebuild: when they fail (or there are none for
 * want of memory), when the tables were never built, or when they belong
 * to network net (0: any) made since the last rebuild, whose own rules
 * only a rebuild adds. The tables end up as the store says either way.
 */
static int fw_apply_locked(struct store *s, int64_t net, const char *what, const char *cmds,
			   struct error *err)
{
	struct error lerr = {0};

	if (!fw_known.built || (net && !fw_ids_has(&fw_known.nets, net)))
		return fw_sync_locked(s, err);
	if (cmds && !fw_nft(cmds, false, NULL, &lerr))
		return 0;
	log_warn("firewall: %s: %s; rebuilding the tables", what,
		 cmds ? lerr.msg : "out of memory");
	return fw_sync_locked(s, err);
}

/* A port row (as port_list's) from an instance row; NULL for one without a port. */
static json_t *fw_port_row(const json_t *inst)
{
	if (!json_string_value(json_object_get(inst, "ip")))
		return NULL;
	return json_pack("{s:O, s:O, s:O, s:I}", "instance_id", json_object_get(inst, "id"), "mac",
			 json_object_get(inst, "mac") ?: json_null(), "ip",
			 json_object_get(inst, "ip"), "network_id",
			 json_integer_value(json_object_get(inst, "network_id")));
}

static int fw_port_locked(struct store *s, const json_t *row, struct error *err)
{
	int64_t id = json_integer_value(json_object_get(row, "instance_id"));
	char *cmds = NULL, what[64];
	int ret = fw_port_elements(row, true, &cmds);

	if (ret == -EINVAL)
		return error_set(err, EINVAL,
				 "instance %lld: its port's MAC or address does not parse: its tap "
				 "may send nothing",
				 (long long)id);
	snprintf(what, sizeof(what), "instance %lld's port", (long long)id);
	ret = fw_apply_locked(s, json_integer_value(json_object_get(row, "network_id")), what, cmds,
			      err);
	free(cmds);
	if (!ret)
		fw_ids_add(&fw_known.ports, id);
	return ret;
}

/* A forward row's network: its bridge's id (0: not a bunshin bridge, then no check). */
static int64_t fw_net(const json_t *fwd)
{
	return netr_bridge_id(json_string_value(json_object_get(fwd, "bridge")));
}

static void fw_report(int ret, struct error *err)
{
	if (ret)
		log_error("firewall: %s", err->msg);
}

void fw_port_added(const struct daemon *d, struct store *s, int64_t id)
{
	struct error err = {0};
	json_t *inst = NULL, *row = NULL;
	char ref[24];
	int ret;

	(void)d;
	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	pthread_mutex_lock(&fw_lock);
	/* Read under the lock: deleted meanwhile, it must not come back. */
	ret = STORE(s, instance_get, 0, ref, &inst, &err);
	if (!ret && (row = fw_port_row(inst)))
		ret = fw_port_locked(s, row, &err);
	pthread_mutex_unlock(&fw_lock);
	fw_report(ret == -ENOENT ? 0 : ret, &err);
	json_decref(row);
	json_decref(inst);
}

void fw_forward_added(const struct daemon *d, struct store *s, int64_t instance_id, int64_t id)
{
	struct error err = {0};
	json_t *all = NULL, *f;
	char *cmds = NULL, what[64];
	size_t i;
	int ret;

	(void)d;
	snprintf(what, sizeof(what), "forward %lld", (long long)id);
	pthread_mutex_lock(&fw_lock);
	ret = STORE(s, forward_list, instance_id, &all, &err);
	json_array_foreach(all, i, f)
	{
		if (json_integer_value(json_object_get(f, "id")) != id)
			continue;
		ret = fw_forward_elements(f, true, &cmds);
		ret = ret == -EINVAL ? error_set(&err, EINVAL, "%s does not parse: left out", what)
				     : fw_apply_locked(s, fw_net(f), what, cmds, &err);
	}
	pthread_mutex_unlock(&fw_lock);
	fw_report(ret, &err);
	free(cmds);
	json_decref(all);
}

json_t *fw_rows(struct store *s, int64_t instance_id, int64_t forward_id)
{
	json_t *rows = json_pack("{s:[], s:[]}", "ports", "forwards"), *inst = NULL, *all = NULL;
	json_t *f, *port;
	struct error err = {0};
	char ref[24];
	size_t i;
	int ret;

	snprintf(ref, sizeof(ref), "%lld", (long long)instance_id);
	ret = forward_id ? 0 : STORE(s, instance_get, 0, ref, &inst, &err);
	if (!ret && (port = fw_port_row(inst)))
		json_array_append_new(json_object_get(rows, "ports"), port);
	ret = ret ?: STORE(s, forward_list, instance_id, &all, &err);
	json_array_foreach(all, i, f)
	{
		if (!forward_id || json_integer_value(json_object_get(f, "id")) == forward_id)
			json_array_append(json_object_get(rows, "forwards"), f);
	}
	json_decref(inst);
	json_decref(all);
	if (ret && rows) {
		log_warn("firewall: %s: the tables will be rebuilt instead", err.msg);
		json_decref(rows);
		return NULL;
	}
	return rows;
}

/*
 * Whether the store has a forward on a protocol and host port of fwds
 * again: its elements may be the very ones that removing fwds's would
 * take, so only a rebuild knows what to keep.
 */
static bool fw_fwd_taken(struct store *s, const json_t *fwds)
{
	struct error err = {0};
	const json_t *a, *b;
	json_t *all;
	size_t i, j;
	bool taken = false;

	if (!json_array_size(fwds))
		return false;
	if (STORE(s, forward_list, 0, &all, &err))
		return true;
	json_array_foreach(all, i, a)
	{
		json_array_foreach(fwds, j, b)
		{
			taken |= json_equal(json_object_get(a, "proto"),
					    json_object_get(b, "proto")) &&
				 json_equal(json_object_get(a, "host_port"),
					    json_object_get(b, "host_port"));
		}
	}
	json_decref(all);
	return taken;
}

/* The removal commands of rows's ports and forwards; rows that do not parse have none. */
static char *fw_gone_cmds(const json_t *rows)
{
	static const char *const kinds[] = {"ports", "forwards"};
	char *text = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&text, &size);

	if (!m)
		return NULL;
	for (int k = 0; k < 2; k++) {
		const json_t *row;
		size_t i;

		json_array_foreach(json_object_get(rows, kinds[k]), i, row)
		{
			char *cmds = NULL;
			int ret = k ? fw_forward_elements(row, false, &cmds)
				    : fw_port_elements(row, false, &cmds);

			if (!ret)
				fputs(cmds, m);
			free(cmds);
		}
	}
	if (fclose(m)) {
		free(text);
		return NULL;
	}
	return text;
}

static int fw_gone_locked(struct store *s, const json_t *rows, struct error *err)
{
	const json_t *row;
	char *cmds;
	size_t i;
	int ret;

	if (!rows || fw_fwd_taken(s, json_object_get(rows, "forwards")))
		return fw_sync_locked(s, err);
	cmds = fw_gone_cmds(rows);
	ret = cmds && !*cmds ? 0 : fw_apply_locked(s, 0, "removing elements", cmds, err);
	free(cmds);
	json_array_foreach(json_object_get(rows, "ports"), i, row)
	{
		fw_ids_del(&fw_known.ports,
			   json_integer_value(json_object_get(row, "instance_id")));
	}
	return ret;
}

void fw_gone(const struct daemon *d, struct store *s, json_t *rows)
{
	struct error err = {0};
	int ret;

	(void)d;
	pthread_mutex_lock(&fw_lock);
	ret = fw_gone_locked(s, rows, &err);
	pthread_mutex_unlock(&fw_lock);
	fw_report(ret, &err);
	json_decref(rows);
}

int fw_port_ready(const struct daemon *d, const json_t *inst, struct error *err)
{
	json_t *row = fw_port_row(inst);
	struct store *s;
	char *cmds = NULL;
	int ret;

	if (!row)
		return 0;
	/* A connection before the lock, as fw_sync(): a holder of both waits on neither. */
	s = pool_get(d->pool);
	pthread_mutex_lock(&fw_lock);
	ret = fw_port_elements(row, true, &cmds);
	if (ret ||
	    !fw_ids_has(&fw_known.ports, json_integer_value(json_object_get(row, "instance_id"))))
		ret = fw_port_locked(s, row, err);
	pthread_mutex_unlock(&fw_lock);
	pool_put(d->pool, s);
	free(cmds);
	json_decref(row);
	return ret ? error_wrap(err, "firewall") : 0;
}

/* Instances' egress is routed: bunshind's namespace must forward IPv4. */
static int fw_ip_forward(struct error *err)
{
	static const char path[] = "/proc/sys/net/ipv4/ip_forward";
	char was = '0';
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	if (read(fd, &was, 1) != 1 || (was != '1' && pwrite(fd, "1\n", 2, 0) != 2)) {
		int e = errno ?: EIO;

		close(fd);
		return error_set(err, e, "%s: %s", path, strerror(e));
	}
	close(fd);
	log_info("firewall: IPv4 forwarding %s (net.ipv4.ip_forward = 1)",
		 was == '1' ? "already on" : "turned on");
	return 0;
}

int fw_begin(const struct daemon *d, struct error *err)
{
	int ret = fw_sync(d, NULL, err);

	if (!ret)
		log_info("firewall: tables inet bunshin and bridge bunshin rebuilt from the store"
			 " (none while there is no network)");
	return ret;
}

static void fw_count(const json_t *objs, uint64_t out[FW_NREASONS])
{
	static const char *const reasons[] = FW_REASONS;
	const json_t *o;
	size_t i;

	json_array_foreach(objs, i, o)
	{
		const json_t *c = json_object_get(o, "counter");
		const char *name = json_string_value(json_object_get(c, "name"));

		for (unsigned int r = 0; name && r < FW_NREASONS; r++) {
			if (!strcmp(name, reasons[r]))
				out[r] +=
					(uint64_t)json_integer_value(json_object_get(c, "packets"));
		}
	}
}

void fw_dropped(uint64_t out[FW_NREASONS])
{
	static const char *const tables[] = {"inet", "bridge"};
	struct error err = {0};

	memset(out, 0, FW_NREASONS * sizeof(*out));
	for (unsigned int t = 0; t < 2; t++) {
		char cmd[64], *text = NULL;
		json_t *doc;

		snprintf(cmd, sizeof(cmd), "list counters table %s bunshin", tables[t]);
		if (fw_nft(cmd, true, &text, &err))
			continue;
		doc = json_loads(text, 0, NULL);
		fw_count(json_object_get(doc, "nftables"), out);
		json_decref(doc);
		free(text);
	}
}
