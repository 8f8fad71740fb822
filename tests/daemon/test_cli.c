// SPDX-License-Identifier: MIT
/*
 * bunshin, the CLI, against a real bunshind: exit codes, --json that
 * parses, --help everywhere, bad arguments, and where the endpoint and
 * token come from (flags, environment, config file).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

static struct dh h;
static char out[65536];

static void setup(void)
{
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/*
 * Runs bunshin with these arguments (NULL-terminated) and the environment
 * set to reach the daemon as admin unless env_off; stdout into out.
 */
static int run_env(bool env_off, const char *home, ...)
{
	const char *argv[32] = {getenv("BUNSHIN_CLI")};
	int n = 1, fds[2], st = 0;
	size_t len = 0;
	ssize_t r;
	va_list ap;
	pid_t pid;

	va_start(ap, home);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	if (!pid) {
		int null = open("/dev/null", O_WRONLY);

		dup2(fds[1], 1);
		dup2(null, 2);
		close(fds[0]);
		if (env_off) {
			unsetenv("BUNSHIN_ENDPOINT");
			unsetenv("BUNSHIN_TOKEN");
		} else {
			setenv("BUNSHIN_ENDPOINT", h.sock, 1);
			setenv("BUNSHIN_TOKEN", h.admin, 1);
		}
		setenv("HOME", home ? home : "/nonexistent", 1);
		unsetenv("XDG_CONFIG_HOME");
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((r = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = 0;
	close(fds[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define run(...) run_env(false, NULL, __VA_ARGS__, NULL)

Test(cli, help_everywhere)
{
	cr_expect_eq(run("--help"), 0);
	cr_expect(strstr(out, "Exit status"));
	cr_expect_eq(run("server", "--help"), 0);
	cr_expect(strstr(out, "server create"));
	cr_expect_eq(run("server", "create", "--help"), 0);
	cr_expect(strstr(out, "--flavor"));
	cr_expect_eq(run("quota", "set", "--help"), 0);
	cr_expect_eq(run("token", "create", "-h"), 0);
}

Test(cli, usage_errors_exit_2)
{
	cr_expect_eq(run_env(false, NULL, NULL), 2);
	cr_expect_eq(run("bogus", "list"), 2);
	cr_expect_eq(run("server"), 2);
	cr_expect_eq(run("server", "explode"), 2);
	cr_expect_eq(run("server", "show"), 2);
	cr_expect_eq(run("server", "show", "a", "b"), 2);
	cr_expect_eq(run("server", "list", "--frob"), 2);
	cr_expect_eq(run("server", "create", "x", "--flavor"), 2);
	cr_expect_eq(run("server", "create", "x", "--image", "test-guest"), 2);
	cr_expect_eq(run("flavor", "create", "f", "--vcpus", "two", "--ram", "64"), 2);
	cr_expect_eq(run("quota", "set", "admin"), 2);
	cr_expect_eq(run("server", "start", "x", "--wait", "--timeout", "0"), 2);
	cr_expect_eq(run("--endpoint"), 2);
}

Test(cli, api_errors_map_to_exit_codes)
{
	cr_expect_eq(run("server", "show", "nope"), 3);
	cr_expect_eq(run("--token", "bad", "server", "list"), 4);
	cr_expect_eq(run("--endpoint", "unix:/nonexistent.sock", "server", "list"), 5);
	cr_expect_eq(run("server", "create", "9bad", "--flavor", "tiny", "--image", "test-guest"),
		     1);
	cr_expect_eq(run("server", "create", "ok", "--flavor", "tiny", "--image", "test-guest",
			 "--stopped"),
		     0);
	cr_expect_eq(run("server", "create", "ok", "--flavor", "tiny", "--image", "test-guest",
			 "--stopped"),
		     1);
	cr_expect_eq(run_env(true, NULL, "server", "list", NULL), 5); /* default socket: absent */
}

Test(cli, json_output_parses)
{
	json_t *j;

	cr_assert_eq(run("--json", "flavor", "list"), 0);
	j = json_loads(out, 0, NULL);
	cr_assert(json_is_array(j), "%s", out);
	cr_expect_eq(json_array_size(j), 4);
	json_decref(j);
	cr_assert_eq(run("server", "create", "web", "--flavor", "small", "--image", "test-guest",
			 "--stopped", "--json"),
		     0);
	j = json_loads(out, 0, NULL);
	cr_assert(json_is_object(j), "%s", out);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "stopped");
	json_decref(j);
	/* Tables for people: a header, then a row per server. */
	cr_assert_eq(run("server", "list"), 0);
	cr_expect(strstr(out, "NAME"));
	cr_expect(strstr(out, "web"));
	cr_assert_eq(run("host", "show"), 0);
	cr_expect(strstr(out, "capacity"));
}

Test(cli, token_from_config_file)
{
	char home[200], path[300];
	FILE *f;

	snprintf(home, sizeof(home), "%s/home", h.dir);
	snprintf(path, sizeof(path), "%s/.config", home);
	cr_assert_eq(mkdir(home, 0700), 0);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.config/bunshin", home);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.config/bunshin/config", home);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "# bunshin\nendpoint = %s\ntoken = %s\n", h.sock, h.admin);
	fclose(f);
	cr_expect_eq(run_env(true, home, "flavor", "list", NULL), 0);
	/* A flag wins over the file. */
	cr_expect_eq(run_env(true, home, "--token", "bad", "flavor", "list", NULL), 4);
}

Test(cli, tenant_user_token_quota_flow)
{
	json_t *j;
	char tok[128];

	cr_expect_eq(run("tenant", "create", "team-a", "--instances", "1"), 0);
	cr_expect_eq(run("user", "create", "alice", "--tenant", "team-a", "--role", "member"), 0);
	cr_assert_eq(run("--json", "token", "create", "--user", "alice"), 0);
	j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "%s", out);
	snprintf(tok, sizeof(tok), "%s", json_string_value(json_object_get(j, "token")));
	json_decref(j);
	cr_expect_eq(run("--token", tok, "server", "create", "a1", "--flavor", "tiny", "--image",
			 "test-guest", "--stopped"),
		     0);
	cr_expect_eq(run("--token", tok, "server", "create", "a2", "--flavor", "tiny", "--image",
			 "test-guest", "--stopped"),
		     1);
	cr_expect_eq(run("quota", "set", "team-a", "--instances", "2"), 0);
	cr_expect_eq(run("--token", tok, "server", "create", "a2", "--flavor", "tiny", "--image",
			 "test-guest", "--stopped"),
		     0);
	cr_expect_eq(run("--token", tok, "host", "show"), 4);
	cr_expect_eq(run("--token", tok, "--json", "quota", "show"), 0);
	cr_expect(strstr(out, "\"instances\": 2"), "%s", out);
	cr_expect_eq(run("--token", tok, "server", "events", "a2", "--limit", "1"), 0);
	cr_expect(strstr(out, "POST /v1/instances"), "%s", out);
	cr_expect_eq(run("--token", tok, "server", "delete", "a1"), 0);
	cr_expect_eq(run("flavor", "create", "mini", "--vcpus", "1", "--ram", "32", "--tenant",
			 "team-a"),
		     0);
	cr_expect_eq(run("flavor", "delete", "mini"), 3); /* not the public one: there is none */
	cr_expect_eq(run("flavor", "delete", "mini", "--tenant", "team-a"), 0);
	cr_expect_eq(run("user", "create", "gone", "--tenant", "team-a"), 0);
	cr_expect_eq(run("user", "delete", "gone"), 0);
	cr_expect_eq(run("user", "delete", "gone"), 3);
	cr_expect_eq(run("event", "list", "--limit", "20"), 0);
	cr_expect(strstr(out, "DELETE /v1/instances/a1"), "%s", out);
}

Test(cli, server_wait_and_console)
{
	dh_need_kvm();
	cr_expect_eq(run("server", "create", "web", "--flavor", "tiny", "--image", "test-guest",
			 "--wait"),
		     0);
	for (int i = 0; i < 600 && !strstr(out, "result=ready"); i++) {
		run("server", "console", "web");
		usleep(100000);
	}
	cr_expect(strstr(out, "name=serial-echo result=ready"), "%s", out);
	cr_expect_eq(run("server", "stop", "web", "--wait", "--timeout", "30"), 0);
	cr_expect_eq(run("--json", "server", "show", "web"), 0);
	cr_expect(strstr(out, "\"stopped\""), "%s", out);
}

Test(cli, bash_completion_follows_the_commands)
{
	char cmd[2048], dir[1024];
	FILE *p;
	size_t n;

	snprintf(dir, sizeof(dir), "%s", getenv("BUNSHIN_CLI"));
	*strrchr(dir, '/') = 0;
	snprintf(cmd, sizeof(cmd),
		 "PATH='%s':$PATH bash -c 'source %s; COMP_WORDS=(bunshin server st); "
		 "COMP_CWORD=2; _bunshin; echo \"${COMPREPLY[*]}\"; "
		 "COMP_WORDS=(bunshin image import x --); COMP_CWORD=4; _bunshin; "
		 "echo \"${COMPREPLY[*]}\"'",
		 dir, getenv("BUNSHIN_COMPLETION"));
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	cr_expect_eq(pclose(p), 0);
	cr_expect(strstr(out, "start stop\n"), "%s", out);
	cr_expect(strstr(out, "--kind"), "%s", out);
	cr_expect(strstr(out, "--cmdline"), "%s", out);
}
