// SPDX-License-Identifier: MIT
/* The parts of hostnet's link code that need no kernel: names and error codes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../src/hostnet/internal.h"

static void name_ok(const char *name)
{
	struct error err = {0};

	cr_assert_eq(hostnet_name_check(name, &err), 0, "'%s': %s", name, err.msg);
}

static void name_bad(const char *name, int code, const char *needle)
{
	struct error err = {0};

	cr_assert_eq(hostnet_name_check(name, &err), -code, "'%s' accepted", name);
	cr_assert(strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
}

Test(hostnet_names, accepted)
{
	name_ok("bn-br0");
	name_ok("a");
	name_ok("bntap-123456789"); /* 15: the most IFNAMSIZ allows */
	name_ok("x.y_z-1");
}

Test(hostnet_names, refused)
{
	name_bad("", EINVAL, "empty");
	name_bad("bntap-1234567890", ENAMETOOLONG, "longer than 15");
	name_bad("a-very-long-name-indeed-yes", ENAMETOOLONG, "'a-very-long-name");
	name_bad(".", EINVAL, "not allowed");
	name_bad("..", EINVAL, "not allowed");
	name_bad("a/b", EINVAL, "0x2f");
	name_bad("a:b", EINVAL, "0x3a");
	name_bad("a b", EINVAL, "0x20");
	name_bad("a\tb", EINVAL, "0x09");
	name_bad("a\nb", EINVAL, "0x0a");
	name_bad("a\x7f", EINVAL, "0x7f");
	name_bad("caf\xc3\xa9", EINVAL, "0xc3");
}

Test(hostnet_names, netlink_errors_become_errnos)
{
	cr_assert_eq(hostnet_nl_errno(-NLE_PERM), EPERM);
	cr_assert_eq(hostnet_nl_errno(NLE_PERM), EPERM);
	cr_assert_eq(hostnet_nl_errno(-NLE_EXIST), EEXIST);
	cr_assert_eq(hostnet_nl_errno(-NLE_OBJ_NOTFOUND), ENODEV);
	cr_assert_eq(hostnet_nl_errno(-NLE_NODEV), ENODEV);
	cr_assert_eq(hostnet_nl_errno(-NLE_BUSY), EBUSY);
	cr_assert_eq(hostnet_nl_errno(-NLE_FAILURE), EIO);
}

Test(hostnet_names, failure_message_names_the_link)
{
	struct error err = {0};

	cr_assert_eq(hostnet_nl_fail(&err, -NLE_PERM, "creating bridge", "bn-br0"), -EPERM);
	cr_assert_eq(err.code, EPERM);
	cr_assert(strstr(err.msg, "creating bridge 'bn-br0': "), "%s", err.msg);
	cr_assert(strstr(err.msg, "(needs CAP_NET_ADMIN)"), "%s", err.msg);
	cr_assert_null(strchr(err.msg, '\n'));
}
