// SPDX-License-Identifier: MIT
/*
 * DHCP on instance networks: one dnsmasq per network whose bridge exists,
 * serving only static leases, from a hosts file (MAC,IP per port) made
 * from the store, so the address a guest gets is the one its port holds.
 * It answers DNS on the gateway too: instances' names (NAME and
 * NAME.bunshin.internal, from the names file) within the network, other
 * names forwarded to the host's resolvers (its /etc/resolv.conf).
 *
 *   STATE/networks/ID/hosts        the static leases (rewritten atomically)
 *   STATE/networks/ID/names        "IP NAME" per port, for DNS
 *   STATE/networks/ID/leases       dnsmasq's lease file
 *   STATE/networks/ID/dnsmasq.pid  written by dnsmasq
 *   STATE/networks/ID/dnsmasq.log  its stderr
 *
 * One thread owns every dnsmasq: it syncs them with the store when kicked
 * (ports or networks changed) and every few seconds, restarts one that
 * died (saying so in the log), and stops one whose network or bridge is
 * gone, removing its directory. At start-up a dnsmasq a previous bunshind
 * left running is stopped and started afresh, so it reads today's files.
 * When bunshind stops, the dnsmasqs keep serving the VMs that keep running
 * (unless --stop-vms-on-exit).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../hostnet/ipam.h"
#include "daemon.h"
#include "netroute.h"
#include "supervisor.h"

#define DHCPD_PERIOD_MS	 2000 /* a sync even without a kick: bridges made or lost meanwhile */
#define DHCPD_BACKOFF_MS 1000 /* between two starts of one network's dnsmasq */
#define DHCPD_WAIT_MS	 5000 /* the longest dhcpd_sync_wait() waits */
#define DHCPD_STOP_MS	 2000 /* SIGTERM, then SIGKILL after this */
#define DHCPD_MAX_NETS	 1024

struct dhcpd_net {
	int64_t id;
	char bridge[IF_NAMESIZE];
	pid_t pid; /* 0: not running */
	int pidfd;
	char *hosts; /* what the hosts file holds now */
	char *names; /* ... and the names file */
	uint64_t next_start_ms;
	bool seen;
	struct dhcpd_net *next;
};

static struct {
	struct daemon *d;
	const char *dnsmasq;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t synced;
	uint64_t asked, done; /* sync tickets */
	int kickfd;
	bool running;
	struct dhcpd_net *nets;
} dhcpd = {.lock = PTHREAD_MUTEX_INITIALIZER, .synced = PTHREAD_COND_INITIALIZER, .kickfd = -1};

static uint64_t dhcpd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void dhcpd_path(int64_t id, const char *file, char *out, size_t size)
{
	snprintf(out, size, "%s/networks/%lld%s%s", dhcpd.d->opts.state_dir, (long long)id,
		 file ? "/" : "", file ?: "");
}

/* ---- one dnsmasq ---- */

/* After fork: only async-signal-safe calls until exec. */
static __attribute__((noreturn)) void dhcpd_child(char **argv, int logfd)
{
	sigset_t none;
	int null = open("/dev/null", O_RDONLY);

	setsid(); /* signals meant for bunshind (a terminal's ^C) are not its */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL); /* bunshind blocks SIGHUP and SIGTERM */
	signal(SIGPIPE, SIG_DFL);
	dup2(null, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	close_range(3, ~0U, 0);
	fd_limit_restore(); /* bunshind's raised limit is its own */
	execv(argv[0], argv);
	_exit(127);
}

/*
 * DNS on the gateway: dnsmasq binds the bridge's addresses that carry the
 * bridge's own label (metadata.c labels 169.254.169.254 apart). Two
 * networks may have the same gateway address (tenants' subnets overlap),
 * and dnsmasq binds the address, not the device, so each listens on a
 * port of its own (netroute.h) and firewall.c redirects GATEWAY:53 from
 * the network's bridge there; its answers find their bridge by the
 * connection's mark.
 */
#define DHCPD_DOMAIN "bunshin.internal"

static int dhcpd_dns_args(struct dhcpd_net *e, const char *gw, char **argv, int n, char a[][4200])
{
	if (!netr_dns_port(e->id)) {
		log_warn("network %lld: no DNS: network ids past %d get no DNS port",
			 (long long)e->id, NETR_DNS_MAX_ID);
		argv[n++] = "--port=0";
		return n;
	}
	snprintf(a[9], sizeof(a[9]), "--port=%d", netr_dns_port(e->id));
	argv[n++] = a[9];
	argv[n++] = "--domain=" DHCPD_DOMAIN;
	argv[n++] = "--local=/" DHCPD_DOMAIN "/";
	argv[n++] = "--expand-hosts";
	argv[n++] = "--no-hosts"; /* the host's /etc/hosts is not the tenant's business */
	argv[n++] = "--domain-needed";
	dhcpd_path(e->id, "names", a[8], sizeof(a[8]));
	snprintf(a[6], sizeof(a[6]), "--addn-hosts=%s", a[8]);
	argv[n++] = a[6];
	snprintf(a[7], sizeof(a[7]), "--dhcp-option=option:dns-server,%s", gw);
	argv[n++] = a[7];
	return n;
}

static int dhcpd_start(struct dhcpd_net *e, const char *cidr)
{
	char a[10][4200], net[IPAM_ADDR_STRLEN], mask[IPAM_ADDR_STRLEN], gw[IPAM_ADDR_STRLEN];
	char *argv[24];
	struct ipam_net in;
	struct error err = {0};
	int n = 0, logfd;

	if (ipam_parse_cidr(cidr, &in, &err))
		return -EINVAL;
	ipam_format_addr(in.network, net);
	ipam_format_addr(in.netmask, mask);
	ipam_format_addr(in.gateway, gw);
	snprintf(a[0], sizeof(a[0]), "--interface=%s", e->bridge);
	snprintf(a[1], sizeof(a[1]), "--dhcp-range=%s,static,%s", net, mask);
	dhcpd_path(e->id, "hosts", a[8], sizeof(a[8]));
	snprintf(a[2], sizeof(a[2]), "--dhcp-hostsfile=%s", a[8]);
	snprintf(a[3], sizeof(a[3]), "--dhcp-option=option:router,%s", gw);
	dhcpd_path(e->id, "dnsmasq.pid", a[8], sizeof(a[8]));
	snprintf(a[4], sizeof(a[4]), "--pid-file=%s", a[8]);
	dhcpd_path(e->id, "leases", a[8], sizeof(a[8]));
	snprintf(a[5], sizeof(a[5]), "--dhcp-leasefile=%s", a[8]);
	argv[n++] = (char *)dhcpd.dnsmasq;
	argv[n++] = "--keep-in-foreground";
	argv[n++] = "--conf-file=/dev/null";
	argv[n++] = "--bind-interfaces";
	argv[n++] = a[0];
	argv[n++] = "--except-interface=lo";
	n = dhcpd_dns_args(e, gw, argv, n, a);
	/* Root: the hosts file, re-read on SIGHUP, is in the 0700 state directory. */
	argv[n++] = "--user=root";
	argv[n++] = "--dhcp-authoritative";
	argv[n++] = "--log-facility=-";
	for (int i = 1; i <= 5; i++)
		argv[n++] = a[i];
	argv[n] = NULL;
	dhcpd_path(e->id, "dnsmasq.log", a[8], sizeof(a[8]));
	logfd = open(a[8], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0)
		return -errno;
	e->next_start_ms = dhcpd_now_ms() + DHCPD_BACKOFF_MS;
	e->pid = fork();
	if (e->pid == 0)
		dhcpd_child(argv, logfd);
	close(logfd);
	if (e->pid < 0) {
		e->pid = 0;
		return -errno;
	}
	e->pidfd = fd_move_high(pidfd_open(e->pid, 0)); /* our unreaped child: not reused */
	if (e->pidfd < 0) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
		e->pid = 0;
		return -errno;
	}
	log_info("network %lld: dnsmasq (pid %d) serves DHCP%s on %s", (long long)e->id,
		 (int)e->pid, netr_dns_port(e->id) ? " and DNS" : "", e->bridge);
	return 0;
}

/* Waits up to ms for the process behind pidfd to end. */
static bool dhcpd_wait_gone(int pidfd, int ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/* SIGTERM, SIGKILL if it lingers; reaped when it is our child. */
static void dhcpd_kill(int pidfd, bool child)
{
	pidfd_send_signal(pidfd, SIGTERM, NULL, 0);
	if (!dhcpd_wait_gone(pidfd, DHCPD_STOP_MS)) {
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		dhcpd_wait_gone(pidfd, DHCPD_STOP_MS);
	}
	if (child)
		waitid(P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
	close(pidfd);
}

static void dhcpd_stop(struct dhcpd_net *e)
{
	if (!e->pid)
		return;
	dhcpd_kill(e->pidfd, true);
	e->pid = 0;
	log_info("network %lld: dnsmasq stopped", (long long)e->id);
}

/* A dnsmasq that ended: reaped, and said in the log; the next sync restarts it. */
static void dhcpd_reap(struct dhcpd_net *e)
{
	siginfo_t si = {0};

	if (waitid(P_PIDFD, (id_t)e->pidfd, &si, WEXITED | WNOHANG) || !si.si_pid)
		return;
	if (si.si_code == CLD_EXITED)
		log_warn("network %lld: dnsmasq (pid %d) exited with status %d (see %s/networks/"
			 "%lld/dnsmasq.log); restarting it",
			 (long long)e->id, (int)e->pid, si.si_status, dhcpd.d->opts.state_dir,
			 (long long)e->id);
	else
		log_warn("network %lld: dnsmasq (pid %d) killed by signal %d; restarting it",
			 (long long)e->id, (int)e->pid, si.si_status);
	close(e->pidfd);
	e->pid = 0;
}

/* ---- the hosts file ---- */

static int dhcpd_fill(int fd, void *ctx)
{
	const char *s = ctx;

	return pwrite_full(fd, s, strlen(s), 0);
}

/*
 * One line per port on network id: "MAC,IP" (dnsmasq's hosts file, for
 * DHCP) when names is false, else "IP NAME" (its names file, for DNS).
 * NULL when out of memory.
 */
static char *dhcpd_port_lines(int64_t id, const json_t *ports, bool names)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const json_t *p;
	size_t i;

	if (!f)
		return NULL;
	json_array_foreach(ports, i, p)
	{
		const char *ip = sup_str(p, "ip");
		const char *key = sup_str(p, names ? "instance_name" : "mac");

		if (sup_int(p, "network_id") != id || !key || !ip)
			continue;
		if (names)
			fprintf(f, "%s %s\n", ip, key);
		else
			fprintf(f, "%s,%s\n", key, ip);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* One file as want says, *have what it holds; true when it was rewritten. */
static bool dhcpd_sync_file(struct dhcpd_net *e, const char *file, char **have, char *want)
{
	char path[4200];
	int ret;

	if (!want || (*have && !strcmp(want, *have))) {
		free(want);
		return false;
	}
	dhcpd_path(e->id, file, path, sizeof(path));
	ret = file_write_atomic(path, dhcpd_fill, want);
	if (ret) {
		log_warn("network %lld: %s: %s", (long long)e->id, path, strerror(-ret));
		free(want);
		return false;
	}
	free(*have);
	*have = want;
	return true;
}

/* The hosts and names files as the store says; dnsmasq told (SIGHUP) when they changed. */
static void dhcpd_sync_hosts(struct dhcpd_net *e, const json_t *ports)
{
	bool changed =
		dhcpd_sync_file(e, "hosts", &e->hosts, dhcpd_port_lines(e->id, ports, false));

	changed |= dhcpd_sync_file(e, "names", &e->names, dhcpd_port_lines(e->id, ports, true));
	if (changed && e->pid)
		pidfd_send_signal(e->pidfd, SIGHUP, NULL, 0);
}

/* ---- the networks ---- */

static struct dhcpd_net *dhcpd_find(int64_t id, const char *bridge)
{
	struct dhcpd_net *e;

	for (e = dhcpd.nets; e; e = e->next) {
		if (e->id == id)
			return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->id = id;
	snprintf(e->bridge, sizeof(e->bridge), "%s", bridge);
	e->next = dhcpd.nets;
	dhcpd.nets = e;
	return e;
}

/* Its dnsmasq stopped, its files removed, forgotten. */
static void dhcpd_drop(struct dhcpd_net **link)
{
	struct dhcpd_net *e = *link;
	static const char *const files[] = {"hosts",	   "hosts.tmp", "leases",   "dnsmasq.pid",
					    "dnsmasq.log", "names",	"names.tmp"};
	char path[4200];

	dhcpd_stop(e);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		dhcpd_path(e->id, files[i], path, sizeof(path));
		unlink(path);
	}
	dhcpd_path(e->id, NULL, path, sizeof(path));
	if (rmdir(path) && errno != ENOENT)
		log_warn("network %lld: %s: %s", (long long)e->id, path, strerror(errno));
	*link = e->next;
	free(e->hosts);
	free(e->names);
	free(e);
}

static void dhcpd_sync_net(const json_t *n, const json_t *ports, uint64_t now)
{
	const char *bridge = sup_str(n, "bridge");
	char dir[4200];
	struct dhcpd_net *e;
	int ret;

	if (!bridge || !if_nametoindex(bridge))
		return; /* no bridge (yet): nothing to serve on */
	e = dhcpd_find(sup_int(n, "id"), bridge);
	if (!e)
		return;
	e->seen = true;
	dhcpd_path(e->id, NULL, dir, sizeof(dir));
	if (mkdir(dir, 0700) && errno != EEXIST) {
		log_warn("network %lld: %s: %s", (long long)e->id, dir, strerror(errno));
		return;
	}
	dhcpd_sync_hosts(e, ports);
	if (e->pid || !e->hosts || now < e->next_start_ms)
		return;
	ret = dhcpd_start(e, sup_str(n, "cidr"));
	if (ret)
		log_warn("network %lld: cannot start dnsmasq: %s", (long long)e->id,
			 strerror(-ret));
}

static void dhcpd_sync(void)
{
	struct store *s = pool_get(dhcpd.d->pool);
	struct error err = {0};
	json_t *nets = NULL, *ports = NULL;
	uint64_t now = dhcpd_now_ms();
	const json_t *n;
	size_t i;
	int ret = STORE(s, network_list, 0, &nets, &err) ?: STORE(s, port_list, 0, &ports, &err);

	pool_put(dhcpd.d->pool, s);
	if (ret) {
		log_warn("dhcp: %s", err.msg);
		goto out;
	}
	for (struct dhcpd_net *e = dhcpd.nets; e; e = e->next)
		e->seen = false;
	json_array_foreach(nets, i, n) dhcpd_sync_net(n, ports, now);
	for (struct dhcpd_net **l = &dhcpd.nets; *l;) {
		if ((*l)->seen)
			l = &(*l)->next;
		else
			dhcpd_drop(l);
	}
out:
	json_decref(nets);
	json_decref(ports);
}

/* ---- start-up: what a previous bunshind left ---- */

/* Up to size - 1 bytes of a small file (/proc's have no size), NUL-terminated; its length or -1. */
static ssize_t dhcpd_read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

/* Whether pid is a dnsmasq started for this network directory. */
static bool dhcpd_is_ours(pid_t pid, const char *dir)
{
	char path[64], want[4300], buf[8192];
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	snprintf(want, sizeof(want), "--pid-file=%s/dnsmasq.pid", dir);
	len = dhcpd_read_small(path, buf, sizeof(buf));
	/* the arguments, each NUL-terminated */
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(buf + off) + 1) {
		if (!strcmp(buf + off, want))
			return true;
	}
	return false;
}

/* Stops the dnsmasq a previous bunshind started for dir, if one still runs. */
static void dhcpd_stop_stale(const char *dir)
{
	char path[4300], buf[32];
	uint64_t pid;
	int fd;

	snprintf(path, sizeof(path), "%s/dnsmasq.pid", dir);
	if (dhcpd_read_small(path, buf, sizeof(buf)) <= 0)
		return;
	buf[strcspn(buf, "\n")] = 0;
	if (parse_uint(buf, 2, 1 << 22, &pid))
		return;
	fd = fd_move_high(pidfd_open((pid_t)pid, 0));
	/* The pidfd pins the process, so the check below is about the one we signal. */
	if (fd < 0)
		return;
	if (!dhcpd_is_ours((pid_t)pid, dir)) {
		close(fd);
		return;
	}
	log_info("dhcp: stopping the dnsmasq (pid %d) a previous bunshind left in %s", (int)pid,
		 dir);
	dhcpd_kill(fd, false);
}

static void dhcpd_stop_all_stale(void)
{
	char dir[4200], sub[4400];
	struct dirent *de;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/networks", dhcpd.d->opts.state_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		log_warn("dhcp: %s: %s", dir, strerror(errno));
	dp = opendir(dir);
	if (!dp)
		return;
	while ((de = readdir(dp))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		dhcpd_stop_stale(sub);
	}
	closedir(dp);
}

/* ---- the thread ---- */

static void dhcpd_wait_events(void)
{
	struct pollfd p[DHCPD_MAX_NETS + 1] = {{.fd = dhcpd.kickfd, .events = POLLIN}};
	struct dhcpd_net *e, *who[DHCPD_MAX_NETS + 1];
	int n = 1;
	uint64_t v;

	for (e = dhcpd.nets; e && n <= DHCPD_MAX_NETS; e = e->next) {
		if (e->pid) {
			p[n] = (struct pollfd){.fd = e->pidfd, .events = POLLIN};
			who[n++] = e;
		}
	}
	/* short: shutdown is noticed by polling sup_quitting() */
	if (poll(p, (nfds_t)n, 250) <= 0)
		return;
	if (p[0].revents && read(dhcpd.kickfd, &v, sizeof(v)) < 0)
		log_warn("dhcp: kick: %s", strerror(errno));
	for (int i = 1; i < n; i++) {
		if (p[i].revents)
			dhcpd_reap(who[i]);
	}
}

static void *dhcpd_main(void *arg)
{
	uint64_t last = 0;

	(void)arg;
	dhcpd_stop_all_stale();
	while (!sup_quitting(dhcpd.d->sup)) {
		uint64_t ticket;

		pthread_mutex_lock(&dhcpd.lock);
		ticket = dhcpd.asked;
		pthread_mutex_unlock(&dhcpd.lock);
		if (ticket != dhcpd.done || dhcpd_now_ms() - last >= DHCPD_PERIOD_MS) {
			dhcpd_sync();
			last = dhcpd_now_ms();
			pthread_mutex_lock(&dhcpd.lock);
			dhcpd.done = ticket;
			pthread_cond_broadcast(&dhcpd.synced);
			pthread_mutex_unlock(&dhcpd.lock);
		}
		dhcpd_wait_events();
	}
	pthread_mutex_lock(&dhcpd.lock);
	__atomic_store_n(&dhcpd.running, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&dhcpd.synced);
	pthread_mutex_unlock(&dhcpd.lock);
	while (dhcpd.nets) {
		struct dhcpd_net *e = dhcpd.nets;

		if (dhcpd.d->opts.stop_vms_on_exit)
			dhcpd_stop(e);
		else if (e->pid)
			close(e->pidfd); /* it serves on; the next bunshind restarts it */
		dhcpd.nets = e->next;
		free(e->hosts);
		free(e->names);
		free(e);
	}
	sup_helper_leave(dhcpd.d->sup);
	return NULL;
}

static const char *dhcpd_find_dnsmasq(void)
{
	static const char *const paths[] = {"/usr/sbin/dnsmasq", "/sbin/dnsmasq",
					    "/usr/bin/dnsmasq"};

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		if (!access(paths[i], X_OK))
			return paths[i];
	}
	return NULL;
}

void dhcpd_begin(struct daemon *d)
{
	dhcpd.d = d;
	dhcpd.dnsmasq = dhcpd_find_dnsmasq();
	if (!dhcpd.dnsmasq) {
		log_warn("dhcp: no dnsmasq (install dnsmasq-base): instances get no address by "
			 "DHCP");
		return;
	}
	dhcpd.kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dhcpd.kickfd < 0 || !sup_helper_enter(d->sup)) {
		log_warn("dhcp: cannot start: %s", strerror(errno));
		return;
	}
	dhcpd.running = true;
	if (pthread_create(&dhcpd.thread, NULL, dhcpd_main, NULL)) {
		dhcpd.running = false;
		sup_helper_leave(d->sup);
		log_warn("dhcp: cannot start its thread");
		return;
	}
	pthread_detach(dhcpd.thread);
}

static uint64_t dhcpd_ask(void)
{
	uint64_t one = 1, ticket;

	pthread_mutex_lock(&dhcpd.lock);
	ticket = ++dhcpd.asked;
	pthread_mutex_unlock(&dhcpd.lock);
	if (dhcpd.kickfd >= 0 && write(dhcpd.kickfd, &one, sizeof(one)) < 0)
		log_warn("dhcp: kick: %s", strerror(errno));
	return ticket;
}

void dhcpd_kick(void)
{
	if (__atomic_load_n(&dhcpd.running, __ATOMIC_ACQUIRE))
		dhcpd_ask();
}

void dhcpd_sync_wait(void)
{
	struct timespec until;
	uint64_t ticket;

	if (!__atomic_load_n(&dhcpd.running, __ATOMIC_ACQUIRE))
		return;
	ticket = dhcpd_ask();
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DHCPD_WAIT_MS / 1000;
	pthread_mutex_lock(&dhcpd.lock);
	while (dhcpd.running && dhcpd.done < ticket &&
	       !pthread_cond_timedwait(&dhcpd.synced, &dhcpd.lock, &until))
		;
	pthread_mutex_unlock(&dhcpd.lock);
}
