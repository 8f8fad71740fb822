// SPDX-License-Identifier: MIT
/*
 * bench/fwbench.sh's driver: in the network namespace it is started in
 * (a private one: it replaces tables inet and bridge bunshin there), the
 * firewall of N ports and F forwards on one network, and then, RUNS
 * times, each of:
 *   old_full   the whole ruleset as bunshind made it before sets and maps
 *              (a chain per port; fw_ruleset_old(), the generator of
 *              commit 5c35cb4 built beside this one): what every instance
 *              or forward change cost;
 *   new_full   the whole ruleset now (fw_ruleset()): start-up, networks;
 *   port_add   one more port's elements (fw_port_elements());
 *   port_del   that port's elements removed;
 *   fwd_add    one more forward's elements (fw_forward_elements());
 *   fwd_del    that forward's elements removed;
 * each timed from the store rows to the kernel's answer (text made, then
 * one nft_run_cmd_from_buffer(), one transaction), printed as "NAME MS".
 * Usage: fwbench N F RUNS (without fw_ruleset_old: -DFWBENCH_NO_OLD).
 */
#include <errno.h>
#include <jansson.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/daemon/firewall.h"

#ifndef FWBENCH_NO_OLD
char *fw_ruleset_old(const json_t *nets, const json_t *ports, const json_t *fwds, int *skipped);
#endif

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Port i (from 1): instance i, 10.0.0.0/16 from 10.0.0.2 on. */
static json_t *port_row(int i)
{
	char mac[24], ip[24];
	int a = i + 1;

	snprintf(mac, sizeof(mac), "52:54:00:00:%02x:%02x", (i >> 8) & 0xff, i & 0xff);
	snprintf(ip, sizeof(ip), "10.0.%d.%d", a >> 8, a & 0xff);
	return json_pack("{s:i, s:s, s:s, s:s}", "instance_id", i, "bridge", "bn-1", "mac", mac,
			 "ip", ip);
}

/* Forward i (from 1): host port 10000 + i to port i's 22. */
static json_t *fwd_row(int i)
{
	char ip[24];
	int a = i + 1;

	snprintf(ip, sizeof(ip), "10.0.%d.%d", a >> 8, a & 0xff);
	return json_pack("{s:s, s:i, s:i, s:s, s:s}", "proto", "tcp", "host_port", 10000 + i,
			 "guest_port", 22, "ip", ip, "bridge", "bn-1");
}

/* As bunshind's fw_nft(): a context of its own for each update. */
static void run(const char *text)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);

	if (!nft || nft_ctx_buffer_output(nft) || nft_ctx_buffer_error(nft))
		exit(1);
	if (nft_run_cmd_from_buffer(nft, text)) {
		fprintf(stderr, "fwbench: nftables refused it: %s\n",
			nft_ctx_get_error_buffer(nft));
		exit(1);
	}
	nft_ctx_free(nft);
}

typedef char *(*full_fn)(const json_t *, const json_t *, const json_t *, int *);
typedef int (*elem_fn)(const json_t *, bool, char **);

static void time_full(const char *name, full_fn gen, const json_t *nets, const json_t *ports,
		      const json_t *fwds)
{
	double t0 = now_ms();
	char *text = gen(nets, ports, fwds, NULL);

	if (!text)
		exit(1);
	run(text);
	printf("%s %.3f\n", name, now_ms() - t0);
	free(text);
}

static void time_elem(const char *name, elem_fn gen, const json_t *row, bool add)
{
	double t0 = now_ms();
	char *text = NULL;

	if (gen(row, add, &text))
		exit(1);
	run(text);
	printf("%s %.3f\n", name, now_ms() - t0);
	free(text);
}

int main(int argc, char **argv)
{
	int n = argc == 4 ? atoi(argv[1]) : 0, f = argc == 4 ? atoi(argv[2]) : -1;
	int runs = argc == 4 ? atoi(argv[3]) : 0;
	json_t *nets, *ports = json_array(), *fwds = json_array(), *port, *fwd;

	if (n < 1 || n > 60000 || f < 0 || f > n || runs < 1) {
		fprintf(stderr, "usage: fwbench PORTS FORWARDS RUNS (0 <= FORWARDS <= PORTS)\n");
		return 2;
	}
	nets = json_pack("[{s:i, s:i, s:s, s:s, s:i}]", "id", 1, "tenant_id", 1, "bridge", "bn-1",
			 "cidr", "10.0.0.0/16", "isolated", 0);
	for (int i = 1; i <= n; i++)
		json_array_append_new(ports, port_row(i));
	for (int i = 1; i <= f; i++)
		json_array_append_new(fwds, fwd_row(i));
	port = port_row(n + 1);
	fwd = fwd_row(n + 1);
	for (int r = 0; r < runs; r++) {
#ifndef FWBENCH_NO_OLD
		time_full("old_full", fw_ruleset_old, nets, ports, fwds);
#endif
		time_full("new_full", fw_ruleset, nets, ports, fwds);
		time_elem("port_add", fw_port_elements, port, true);
		time_elem("port_del", fw_port_elements, port, false);
		time_elem("fwd_add", fw_forward_elements, fwd, true);
		time_elem("fwd_del", fw_forward_elements, fwd, false);
	}
	json_decref(nets);
	json_decref(ports);
	json_decref(fwds);
	json_decref(port);
	json_decref(fwd);
	return 0;
}
