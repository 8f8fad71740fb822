// SPDX-License-Identifier: MIT
/*
 * hostnet's policy rules and routes (route.h) against the real kernel,
 * each test in a network namespace of its own (unshare() in the init
 * hook), so the host's rules and tables are never touched. Needs root;
 * skipped with the reason otherwise.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../src/hostnet/route.h"

#define PRIO  31900u
#define TABLE 1000007u
#define GW    0x0a140001u /* 10.20.0.1 */
#define NET   0x0a140000u /* 10.20.0.0 */

static struct hostnet *hn;
static struct error err;

static void setup(void)
{
	const char *why = geteuid() ? "not root" : unshare(CLONE_NEWNET) ? "cannot unshare" : NULL;

	if (why) {
		fprintf(stderr, "skipped: %s\n", why);
		cr_skip_test("%s", why);
	}
	cr_assert_eq(hostnet_open(&hn, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_bridge_create(hn, "bn-7", GW, 24, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
	hostnet_close(hn);
}

TestSuite(hostnet_route, .init = setup, .fini = teardown);

struct seen {
	int count;
	struct hostnet_rule last;
};

static int count_one(const struct hostnet_rule *r, void *opaque)
{
	struct seen *s = opaque;

	s->count++;
	s->last = *r;
	return 0;
}

static struct seen rules_at(uint32_t prio)
{
	struct seen s = {0};

	cr_assert_eq(hostnet_rule_list(hn, prio, count_one, &s, &err), 0, "%s", err.msg);
	return s;
}

Test(hostnet_route, a_rule_is_added_once_listed_and_removed)
{
	struct hostnet_rule r = {.prio = PRIO, .mark = 7, .table = TABLE};
	struct seen s;

	cr_assert_eq(hostnet_rule_add(hn, &r, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_rule_add(hn, &r, &err), 0, "adding it again: %s", err.msg);
	s = rules_at(PRIO);
	cr_expect_eq(s.count, 1, "%d rules at %u: added twice?", s.count, PRIO);
	cr_expect_eq(s.last.mark, 7);
	cr_expect_eq(s.last.table, TABLE);
	cr_expect_eq(rules_at(PRIO + 1).count, 0, "another priority's list has it");
	cr_expect_eq(system("ip -4 rule show | grep -q 'fwmark 0x7 lookup 1000007'"), 0,
		     "ip(8) does not see 'fwmark 0x7 lookup 1000007'");
	cr_assert_eq(hostnet_rule_del(hn, &r, &err), 0, "%s", err.msg);
	cr_expect_eq(rules_at(PRIO).count, 0);
	cr_expect_eq(hostnet_rule_del(hn, &r, &err), 0, "removing what is gone: %s", err.msg);
}

Test(hostnet_route, every_rule_at_the_priority_is_listed)
{
	struct hostnet_rule a = {.prio = PRIO, .mark = 1, .table = TABLE + 1};
	struct hostnet_rule b = {.prio = PRIO, .mark = 2, .table = TABLE + 2};

	cr_assert_eq(hostnet_rule_add(hn, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_rule_add(hn, &b, &err), 0, "%s", err.msg);
	cr_expect_eq(rules_at(PRIO).count, 2);
}

static int stop_at_first(const struct hostnet_rule *r, void *opaque)
{
	(void)r;
	(void)opaque;
	return 42;
}

Test(hostnet_route, a_walk_stops_when_told)
{
	struct hostnet_rule a = {.prio = PRIO, .mark = 1, .table = TABLE + 1};
	struct hostnet_rule b = {.prio = PRIO, .mark = 2, .table = TABLE + 2};

	cr_assert_eq(hostnet_rule_add(hn, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_rule_add(hn, &b, &err), 0, "%s", err.msg);
	cr_expect_eq(hostnet_rule_list(hn, PRIO, stop_at_first, NULL, &err), 42);
}

Test(hostnet_route, a_table_route_is_added_replaced_counted_and_flushed)
{
	cr_expect_eq(hostnet_route_count(hn, TABLE, &err), 0, "a table that does not exist");
	cr_assert_eq(hostnet_route_add(hn, TABLE, NET, 24, "bn-7", GW, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_route_add(hn, TABLE, NET, 24, "bn-7", GW, &err), 0, "again: %s",
		     err.msg);
	cr_expect_eq(hostnet_route_count(hn, TABLE, &err), 1);
	cr_expect_eq(system("ip -4 route show table 1000007 | grep -q "
			    "'^10.20.0.0/24 dev bn-7 .*scope link src 10.20.0.1'"),
		     0, "ip(8) does not see the route");
	cr_expect_eq(system("ip -4 route show table main | grep -q 'table 1000007'"), 256);
	cr_assert_eq(hostnet_route_flush(hn, TABLE, &err), 0, "%s", err.msg);
	cr_expect_eq(hostnet_route_count(hn, TABLE, &err), 0);
	cr_expect_eq(hostnet_route_flush(hn, TABLE, &err), 0, "flushing an empty table");
	/* the main table kept its own route for the bridge */
	cr_expect_eq(system("ip -4 route show table main | grep -q '^10.20.0.0/24 dev bn-7'"), 0);
}

Test(hostnet_route, a_route_goes_with_its_link)
{
	cr_assert_eq(hostnet_route_add(hn, TABLE, NET, 24, "bn-7", GW, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_link_delete(hn, "bn-7", &err), 0, "%s", err.msg);
	cr_expect_eq(hostnet_route_count(hn, TABLE, &err), 0);
}

Test(hostnet_route, bad_input_is_refused_with_one_line)
{
	cr_expect_eq(hostnet_route_add(hn, TABLE, NET, 24, "bn-nope", GW, &err), -ENODEV);
	cr_expect(strstr(err.msg, "bn-nope") && strstr(err.msg, "1000007"), "%s", err.msg);
	cr_expect_eq(hostnet_route_add(hn, TABLE, NET, 33, "bn-7", GW, &err), -EINVAL);
	cr_expect(strstr(err.msg, "/33"), "%s", err.msg);
	cr_expect_lt(hostnet_rp_filter_loose("../all", &err), 0, "a name with '/' was taken");
	cr_expect_eq(hostnet_rp_filter_loose("bn-none", &err), -ENOENT);
	cr_expect(strstr(err.msg, "bn-none"), "%s", err.msg);
}

Test(hostnet_route, rp_filter_is_made_loose)
{
	FILE *f;
	int v = -1;

	cr_assert_eq(hostnet_rp_filter_loose("bn-7", &err), 0, "%s", err.msg);
	f = fopen("/proc/sys/net/ipv4/conf/bn-7/rp_filter", "r");
	cr_assert_not_null(f);
	cr_expect_eq(fscanf(f, "%d", &v), 1);
	fclose(f);
	cr_expect_eq(v, 2);
}
