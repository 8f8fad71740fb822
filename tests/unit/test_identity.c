// SPDX-License-Identifier: MIT
/*
 * A restored VM's new identity (src/vmm/identity.c): the recorded command
 * line with the replaced devices rewritten in place, this one's own
 * options after it, and every override that does not fit refused.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/identity.h"

/* snapshot.c's, which the unit under test calls (snapshot.c itself needs a whole machine). */
void snapshot_args_free(struct snapshot_args *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	free(a->argv);
	a->argv = NULL;
	a->argc = 0;
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The recorded command line, as snapshot_load_config() hands it over (room for extra). */
static void recorded(struct snapshot_args *a, char *const *argv, int argc, int extra)
{
	a->argv = calloc((size_t)(argc + extra + 2), sizeof(char *));
	cr_assert_not_null(a->argv);
	for (int i = 0; i < argc; i++)
		a->argv[i] = strdup(argv[i]);
	a->argc = argc;
}

static char *rec_argv[] = {"bunshin-vmm",
			   "--kernel",
			   "/k",
			   "--net",
			   "tap=t0,id=eth0",
			   "--balloon",
			   "--net=tap=t1,mac=52:54:00:00:00:01",
			   "--cmdline",
			   "--net looks like an option here",
			   "--vsock",
			   "cid=3,uds=/run/a.vsock",
			   "--console-virtio",
			   "unix:/run/a.hvc",
			   "--rng"};

static int merge(char **now_argv, int now_argc, struct snapshot_args *a, struct vmm_config *out,
		 struct error *err)
{
	static struct vmm_config now;
	int ret;

	cr_assert_eq(config_parse(&now, now_argc, now_argv, 0, err), 0, "%s", err->msg);
	recorded(a, rec_argv, ARGC(rec_argv), now_argc);
	ret = identity_merge(a, &now, err);
	if (ret)
		return ret;
	cr_assert_eq(config_parse(out, a->argc, a->argv, 0, err), 0, "%s", err->msg);
	identity_mark(out, &now);
	return 0;
}

Test(identity, replaces_in_place_and_appends_own_options)
{
	char *now[] = {"vmm",
		       "--restore",
		       "/snap",
		       "--serial",
		       "unix:/run/c.sock",
		       "--net",
		       "id=net1,tap=c1,mac=02:00:00:00:00:09",
		       "--net=id=eth0,tap=c0",
		       "--vsock",
		       "cid=44,uds=/run/c.vsock",
		       "--console-virtio=file:/run/c.hvc"};
	struct snapshot_args a = {0};
	struct vmm_config out;
	struct error err = {0};
	static const char *const want[] = {"bunshin-vmm",
					   "--kernel",
					   "/k",
					   "--net",
					   "tap=c0,queues=1,id=eth0",
					   "--balloon",
					   "--net=tap=c1,queues=1,mac=02:00:00:00:00:09",
					   "--cmdline",
					   "--net looks like an option here",
					   "--vsock",
					   "cid=44,uds=/run/c.vsock",
					   "--console-virtio",
					   "file:/run/c.hvc",
					   "--rng",
					   "--serial",
					   "unix:/run/c.sock"};

	cr_assert_eq(merge(now, ARGC(now), &a, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(a.argc, ARGC(want));
	for (int i = 0; i < a.argc; i++)
		cr_assert_str_eq(a.argv[i], want[i], "argument %d", i);
	cr_assert_eq(out.nnets, 2);
	cr_assert(out.nets[0].replaced && out.nets[1].replaced);
	cr_assert_str_eq(out.nets[0].tap, "c0");
	cr_assert(!out.nets[0].has_mac, "no mac=: the device picks a new one");
	cr_assert(out.nets[1].has_mac && out.nets[1].mac[5] == 9);
	cr_assert(out.vsock.replaced && out.vsock.cid == 44);
	cr_assert_str_eq(out.serial, "unix:/run/c.sock");
	snapshot_args_free(&a);
}

Test(identity, nothing_replaced_keeps_the_recording)
{
	char *now[] = {"vmm", "--restore", "/snap", "--verbose"};
	struct snapshot_args a = {0};
	struct vmm_config out;
	struct error err = {0};

	cr_assert_eq(merge(now, ARGC(now), &a, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(a.argc, ARGC(rec_argv) + 1);
	for (int i = 0; i < ARGC(rec_argv); i++)
		cr_assert_str_eq(a.argv[i], rec_argv[i]);
	cr_assert_str_eq(a.argv[a.argc - 1], "--verbose");
	cr_assert(!out.nets[0].replaced && !out.nets[1].replaced && !out.vsock.replaced);
	snapshot_args_free(&a);
}

static void refused(char **now, int argc, const char *want)
{
	struct snapshot_args a = {0};
	struct vmm_config out;
	struct error err = {0};

	cr_assert_neq(merge(now, argc, &a, &out, &err), 0, "accepted, want '%s'", want);
	cr_assert(strstr(err.msg, want), "'%s' not in: %s", want, err.msg);
	snapshot_args_free(&a);
}

Test(identity, refuses_what_does_not_fit)
{
	char *no_id[] = {"vmm", "--restore", "/s", "--net", "tap=x"};
	char *unknown[] = {"vmm", "--restore", "/s", "--net", "id=net2,tap=x"};
	char *twice[] = {"vmm",		  "--restore", "/s",	       "--net",
			 "id=eth0,tap=x", "--net",     "id=net0,tap=y"};
	char *queues[] = {"vmm", "--restore", "/s", "--net", "id=eth0,tap=x,queues=3"};
	char *abbrev[] = {"vmm", "--restore", "/s", "--vso", "cid=5,uds=/x"};

	refused(no_id, ARGC(no_id), "id= names the recorded network device");
	refused(unknown, ARGC(unknown), "no network device 'net2' (it has 2");
	refused(twice, ARGC(twice), "'net0' replaced twice");
	refused(queues, ARGC(queues), "queues=3 for 'eth0', the snapshot has 1");
	refused(abbrev, ARGC(abbrev), "out in full");
}

/* A recording without vsock or console: nothing to replace. */
Test(identity, refuses_devices_the_snapshot_lacks)
{
	char *rec[] = {"bunshin-vmm", "--kernel", "/k"};
	char *vs[] = {"vmm", "--restore", "/s", "--vsock", "cid=5,uds=/x"};
	char *vc[] = {"vmm", "--restore", "/s", "--console-virtio", "unix:/x"};
	struct snapshot_args a = {0};
	struct vmm_config now;
	struct error err = {0};

	cr_assert_eq(config_parse(&now, ARGC(vs), vs, 0, &err), 0, "%s", err.msg);
	recorded(&a, rec, ARGC(rec), ARGC(vs));
	cr_assert_neq(identity_merge(&a, &now, &err), 0);
	cr_assert(strstr(err.msg, "no vsock device"), "%s", err.msg);
	snapshot_args_free(&a);
	cr_assert_eq(config_parse(&now, ARGC(vc), vc, 0, &err), 0, "%s", err.msg);
	recorded(&a, rec, ARGC(rec), ARGC(vc));
	cr_assert_neq(identity_merge(&a, &now, &err), 0);
	cr_assert(strstr(err.msg, "no virtio console"), "%s", err.msg);
	snapshot_args_free(&a);
}
