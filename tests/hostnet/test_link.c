// SPDX-License-Identifier: MIT
/*
 * hostnet's links against the real kernel. Every test runs in a network
 * namespace of its own (Criterion forks a process per test; unshare() in the
 * init hook), so the host's links are never touched. Needs root and
 * /dev/net/tun; skipped with the reason otherwise.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/hostnet/link.h"

static struct hostnet *hn;
static struct error err;

static const char *why_skip(void)
{
	if (geteuid() != 0)
		return "not root";
	if (access("/dev/net/tun", R_OK | W_OK))
		return "no /dev/net/tun";
	if (unshare(CLONE_NEWNET))
		return "cannot unshare(CLONE_NEWNET)";
	return NULL;
}

static void setup(void)
{
	const char *why = why_skip();

	if (why) {
		fprintf(stderr, "skipped: %s\n", why);
		cr_skip_test("%s", why);
	}
	cr_assert_eq(hostnet_open(&hn, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
	hostnet_close(hn);
}

TestSuite(hostnet_link, .init = setup, .fini = teardown);

static struct hostnet_link must_find(const char *name)
{
	struct hostnet_link l;

	cr_assert_eq(hostnet_link_find(hn, name, &l, &err), 0, "%s", err.msg);
	cr_assert_str_eq(l.name, name);
	return l;
}

static void must_be_gone(const char *name)
{
	struct hostnet_link l;

	cr_assert_eq(hostnet_link_find(hn, name, &l, &err), -ENODEV, "'%s' still there", name);
	cr_assert(strstr(err.msg, name), "%s", err.msg);
}

static void ok(int ret)
{
	cr_assert_eq(ret, 0, "%s", err.msg);
}

static void fails(int ret, int code, const char *needle)
{
	cr_assert_eq(ret, -code, "expected %s, got %d (%s)", strerror(code), ret, err.msg);
	cr_assert_eq(err.code, code);
	cr_assert(strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
	cr_assert_null(strchr(err.msg, '\n'));
}

/* The IPv4 address and prefix on name, seen through getifaddrs (not libnl). */
static bool has_addr(const char *name, const char *addr, const char *mask)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	cr_assert_eq(getifaddrs(&ifa), 0);
	for (i = ifa; i; i = i->ifa_next) {
		char a[INET_ADDRSTRLEN], m[INET_ADDRSTRLEN];

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || strcmp(i->ifa_name, name))
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a, sizeof(a));
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_netmask)->sin_addr, m, sizeof(m));
		found |= !strcmp(a, addr) && !strcmp(m, mask);
	}
	freeifaddrs(ifa);
	return found;
}

struct names {
	char list[256];
	int n;
};

static int collect(const struct hostnet_link *l, void *opaque)
{
	struct names *ns = opaque;

	ns->n++;
	strcat(ns->list, l->name);
	strcat(ns->list, " ");
	return 0;
}

static struct names list(const char *prefix)
{
	struct names ns = {0};

	ok(hostnet_link_list(hn, prefix, collect, &ns, &err));
	return ns;
}

/*
 * What bunshin-vmm does with the tap, as user uid/gid with no capabilities:
 * 0, or the errno of TUNSETIFF. In a child, so the test keeps its root.
 */
static int open_as(const char *tap, uid_t uid, gid_t gid)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC); /* root-only node: opened first */
	int status;
	pid_t pid;

	cr_assert_geq(fd, 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ifreq ifr = {0};

		if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
			_exit(100);
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
		_exit(ioctl(fd, TUNSETIFF, &ifr) < 0 ? errno : 0);
	}
	close(fd);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_neq(WEXITSTATUS(status), 100, "could not drop privileges");
	return WEXITSTATUS(status);
}

static const struct hostnet_tap_opts vmm_user = {.uid = 1000, .gid = 1000};

Test(hostnet_link, network_end_to_end)
{
	struct hostnet_link br, tap, veth;
	int here, other;
	struct names ns;

	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 24, &err)); /* 10.20.0.1/24 */
	br = must_find("bn-br0");
	cr_assert_str_eq(br.kind, "bridge");
	cr_assert(br.up);
	cr_assert(has_addr("bn-br0", "10.20.0.1", "255.255.255.0"));

	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err));
	ok(hostnet_link_set_master(hn, "bn-tap0", "bn-br0", &err));
	ok(hostnet_link_set_up(hn, "bn-tap0", true, &err));
	tap = must_find("bn-tap0");
	cr_assert_str_eq(tap.kind, "tun");
	cr_assert_eq(tap.master, br.ifindex);
	cr_assert(tap.up);
	/* persistent: it survived the close of the fd that made it; the VMM's user can attach */
	cr_assert_eq(open_as("bn-tap0", 1000, 1000), 0);
	cr_assert_eq(open_as("bn-tap0", 1001, 1001), EPERM, "another user attached");

	/* a veth whose peer lives in a second namespace */
	here = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	cr_assert_eq(unshare(CLONE_NEWNET), 0);
	other = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	cr_assert_eq(setns(here, CLONE_NEWNET), 0);
	ok(hostnet_veth_create(hn, "bn-veth0", "bn-veth1", other, &err));
	veth = must_find("bn-veth0");
	cr_assert_str_eq(veth.kind, "veth");
	must_be_gone("bn-veth1");
	ok(hostnet_link_set_master(hn, "bn-veth0", "bn-br0", &err));
	cr_assert_eq(must_find("bn-veth0").master, br.ifindex);

	ns = list("bn-");
	cr_assert_eq(ns.n, 3, "%s", ns.list);
	cr_assert_str_eq(ns.list, "bn-br0 bn-tap0 bn-veth0 ");
	cr_assert_eq(list("bn-t").n, 1);
	cr_assert_eq(list("zz").n, 0);
	cr_assert_geq(list("").n, 4); /* lo too */

	/* the peer is in the other namespace, seen from there */
	{
		struct hostnet *hn2;
		struct hostnet_link peer;

		cr_assert_eq(setns(other, CLONE_NEWNET), 0);
		ok(hostnet_open(&hn2, &err));
		cr_assert_eq(setns(here, CLONE_NEWNET), 0);
		ok(hostnet_link_find(hn2, "bn-veth1", &peer, &err));
		cr_assert_str_eq(peer.kind, "veth");
		ok(hostnet_link_delete(hn, "bn-veth0", &err));
		cr_assert_eq(hostnet_link_find(hn2, "bn-veth1", &peer, &err), -ENODEV,
			     "deleting one end leaves the other");
		hostnet_close(hn2);
	}

	ok(hostnet_link_delete(hn, "bn-tap0", &err));
	ok(hostnet_link_delete(hn, "bn-br0", &err));
	cr_assert_eq(list("bn-").n, 0, "%s", list("bn-").list);
	must_be_gone("bn-br0");
	must_be_gone("bn-tap0");
	must_be_gone("bn-veth0");
	cr_assert_not(has_addr("bn-br0", "10.20.0.1", "255.255.255.0"));
	close(here);
	close(other);
}

Test(hostnet_link, creating_again_is_success)
{
	int before;

	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 24, &err));
	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 24, &err));
	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err));
	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err));
	ok(hostnet_veth_create(hn, "bn-veth0", "bn-veth1", -1, &err));
	ok(hostnet_veth_create(hn, "bn-veth0", "bn-veth1", -1, &err));
	before = list("bn-").n;
	cr_assert_eq(before, 4, "%s", list("bn-").list);
	cr_assert(has_addr("bn-br0", "10.20.0.1", "255.255.255.0"));
	/* a bridge found down is brought up again */
	ok(hostnet_link_set_up(hn, "bn-br0", false, &err));
	cr_assert_not(must_find("bn-br0").up);
	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 24, &err));
	cr_assert(must_find("bn-br0").up);
	/* a bridge whose subnet changed in the store answers on the new one only */
	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a1e0001, 16, &err)); /* 10.30.0.1/16 */
	cr_assert(has_addr("bn-br0", "10.30.0.1", "255.255.0.0"));
	cr_assert_not(has_addr("bn-br0", "10.20.0.1", "255.255.255.0"));
	/* same address, other prefix */
	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a1e0001, 24, &err));
	cr_assert(has_addr("bn-br0", "10.30.0.1", "255.255.255.0"));
	cr_assert_not(has_addr("bn-br0", "10.30.0.1", "255.255.0.0"));
	/* a tap whose owner changed in the store is given the new one */
	ok(hostnet_tap_create(hn, "bn-tap0", &(struct hostnet_tap_opts){.uid = 1001, .gid = 1001},
			      &err));
	cr_assert_eq(open_as("bn-tap0", 1001, 1001), 0);
	cr_assert_eq(open_as("bn-tap0", 1000, 1000), EPERM);
}

Test(hostnet_link, tap_in_use_by_its_vmm)
{
	struct ifreq ifr = {0};
	int fd;

	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err));
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "bn-tap0");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	cr_assert_eq(ioctl(fd, TUNSETIFF, &ifr), 0, "%s", strerror(errno));
	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err)); /* reconciliation while running */
	close(fd);
	ok(hostnet_link_delete(hn, "bn-tap0", &err));
	must_be_gone("bn-tap0");
}

Test(hostnet_link, multi_queue_tap)
{
	struct hostnet_tap_opts mq = vmm_user;

	mq.multi_queue = true;
	ok(hostnet_tap_create(hn, "bn-mq0", &mq, &err));
	ok(hostnet_tap_create(hn, "bn-mq0", &mq, &err));
	fails(hostnet_tap_create(hn, "bn-mq0", &vmm_user, &err), EEXIST,
	      "multi_queue on (asked: off)");
	ok(hostnet_tap_create(hn, "bn-sq0", &vmm_user, &err));
	fails(hostnet_tap_create(hn, "bn-sq0", &mq, &err), EEXIST, "multi_queue off (asked: on)");
}

Test(hostnet_link, name_taken_by_another_kind)
{
	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 24, &err));
	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err));
	fails(hostnet_tap_create(hn, "bn-br0", &vmm_user, &err), EEXIST, "'bn-br0'");
	fails(hostnet_bridge_create(hn, "bn-tap0", 0x0a140001, 24, &err), EEXIST, "kind 'tun'");
	fails(hostnet_veth_create(hn, "bn-br0", "bn-p", -1, &err), EEXIST, "kind 'bridge'");
	fails(hostnet_link_set_master(hn, "bn-br0", "bn-tap0", &err), EINVAL, "not a bridge");
	cr_assert_eq(list("bn-").n, 2);
}

Test(hostnet_link, deleting_what_is_gone)
{
	ok(hostnet_link_delete(hn, "bn-nothing", &err));
	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err));
	ok(hostnet_link_delete(hn, "bn-tap0", &err));
	ok(hostnet_link_delete(hn, "bn-tap0", &err));
}

Test(hostnet_link, bad_names_and_missing_links)
{
	struct hostnet_link l;

	fails(hostnet_bridge_create(hn, "bn-0123456789abcdef", 0x0a140001, 24, &err), ENAMETOOLONG,
	      "longer than 15");
	fails(hostnet_tap_create(hn, "", &vmm_user, &err), EINVAL, "empty");
	fails(hostnet_tap_create(hn, "bn/x", &vmm_user, &err), EINVAL, "'bn/x'");
	fails(hostnet_veth_create(hn, "bn-a", "bn b", -1, &err), EINVAL, "'bn b'");
	fails(hostnet_link_delete(hn, "..", &err), EINVAL, "not allowed");
	fails(hostnet_link_find(hn, "bn-none", &l, &err), ENODEV, "'bn-none' does not exist");
	fails(hostnet_link_set_up(hn, "bn-none", true, &err), ENODEV, "'bn-none'");
	fails(hostnet_link_set_master(hn, "bn-none", NULL, &err), ENODEV, "'bn-none'");
	fails(hostnet_link_set_master(hn, "lo", "bn-nobr", &err), ENODEV, "'bn-nobr'");
	fails(hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 33, &err), EINVAL, "/33");
	fails(hostnet_veth_create_at(hn, "bn-v0", "bn-v1", "/nonexistent/ns", &err), ENOENT,
	      "/nonexistent/ns");
	cr_assert_eq(list("bn-").n, 0, "%s", list("bn-").list);
}

Test(hostnet_link, detach_from_bridge)
{
	ok(hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 24, &err));
	ok(hostnet_tap_create(hn, "bn-tap0", &vmm_user, &err));
	ok(hostnet_link_set_master(hn, "bn-tap0", "bn-br0", &err));
	cr_assert_eq(must_find("bn-tap0").master, must_find("bn-br0").ifindex);
	ok(hostnet_link_set_master(hn, "bn-tap0", NULL, &err));
	cr_assert_eq(must_find("bn-tap0").master, 0);
}

/* Without CAP_NET_ADMIN (a plain user, in the test's namespace): one clear line, nothing made. */
Test(hostnet_link, unprivileged_caller)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct error e = {0};
		int bad = 0;

		if (setgroups(0, NULL) || setresgid(1000, 1000, 1000) ||
		    setresuid(1000, 1000, 1000))
			_exit(100);
		bad |= hostnet_bridge_create(hn, "bn-br0", 0x0a140001, 24, &e) != -EPERM;
		bad |= !strstr(e.msg, "creating bridge 'bn-br0'") ||
		       !strstr(e.msg, "needs CAP_NET_ADMIN");
		fprintf(stderr, "%s\n", e.msg);
		bad |= hostnet_tap_create(hn, "bn-tap0", &vmm_user, &e) != -EACCES;
		bad |= !strstr(e.msg, "creating tap 'bn-tap0': open /dev/net/tun");
		fprintf(stderr, "%s\n", e.msg);
		bad |= hostnet_link_delete(hn, "lo", &e) != -EPERM || !strstr(e.msg, "'lo'");
		fprintf(stderr, "%s\n", e.msg);
		_exit(bad);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "wrong error (see stderr)");
	cr_assert_eq(list("bn-").n, 0);
	must_find("lo");
}
