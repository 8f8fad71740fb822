// SPDX-License-Identifier: MIT
/*
 * firewall.h's tables, applied through libnftables: the text of
 * firewall_rules.c in one nft_run_cmd_from_buffer(), which the kernel
 * takes as one transaction (the old tables deleted and the new ones made,
 * or nothing changed). The tables stay when bunshind exits, with or
 * without --stop-vms-on-exit: whatever VMs still run keep their rules, and
 * the next start rebuilds them from the store anyway.
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

static pthread_mutex_t fw_lock = PTHREAD_MUTEX_INITIALIZER;

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
		return fw_remove(err);
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
