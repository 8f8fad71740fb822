// SPDX-License-Identifier: MIT
/*
 * jail_check_path() resolves from "/" (the jail's root once inside); here
 * it runs on the host's, in a temporary directory, which is the same code.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/sandbox/jail.h"

static char dir[64];

static void setup(void)
{
	char path[128];
	FILE *f;

	strcpy(dir, "/tmp/bunshin-jpath-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/real", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/real/file", dir);
	f = fopen(path, "w");
	cr_assert(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/lnkdir", dir);
	cr_assert_eq(symlink("real", path), 0);
	snprintf(path, sizeof(path), "%s/real/lnkfile", dir);
	cr_assert_eq(symlink("file", path), 0);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(jail_path, .init = setup, .fini = teardown);

static int check(const char *rel, bool may_be_missing, struct error *err)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	error_clear(err);
	return jail_check_path("--disk", path, may_be_missing, err);
}

Test(jail_path, plain_paths_pass)
{
	struct error err;

	cr_assert_eq(check("real/file", false, &err), 0, "%s", err.msg);
	cr_assert_eq(check("real//file", false, &err), 0, "%s", err.msg);
	cr_assert_eq(check("real/new.sock", true, &err), 0, "%s", err.msg);
}

Test(jail_path, symlinks_anywhere_are_refused)
{
	struct error err;

	cr_assert_eq(check("real/lnkfile", false, &err), -ELOOP);
	cr_assert(strstr(err.msg, "a symbolic link on the path"), "%s", err.msg);
	cr_assert_eq(check("lnkdir/file", false, &err), -ELOOP);
	/* a file still to be made, in a directory reached through a link */
	cr_assert_eq(check("lnkdir/new.sock", true, &err), -ELOOP);
}

Test(jail_path, dotdot_is_refused_even_when_it_stays_inside)
{
	struct error err;

	cr_assert_eq(check("real/../real/file", false, &err), -EINVAL);
	cr_assert(strstr(err.msg, "'..' in a path"), "%s", err.msg);
	cr_assert_eq(check("real/..", false, &err), -EINVAL);
	cr_assert_eq(check("real/..x", true, &err), 0, "a name that starts with .. is fine");
}

Test(jail_path, missing_files_and_directories)
{
	struct error err;

	cr_assert_eq(check("real/nope", false, &err), -ENOENT);
	cr_assert(strstr(err.msg, "No such file or directory (inside the jail)"), "%s", err.msg);
	cr_assert_eq(check("nodir/new.sock", true, &err), -ENOENT);
}
