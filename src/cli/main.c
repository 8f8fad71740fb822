// SPDX-License-Identifier: MIT
/*
 * bunshin: the command line, the endpoint and token (flags, then the
 * environment, then ~/.config/bunshin/config), API calls and output.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/httpc.h"
#include "cli.h"

#define CLI_DEFAULT_ENDPOINT "unix:/var/lib/bunshin/bunshind.sock"
#define CLI_CONF_VALUE_MAX   512

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("bunshin: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see bunshin --help)\n", stderr);
	return CLI_USAGE;
}

static void cli_help_main(void)
{
	const char *last = "";

	printf("usage: bunshin [--endpoint unix:PATH|http://HOST:PORT|https://HOST:PORT]\n"
	       "               [--token T] [--cacert FILE] [--json] RESOURCE VERB [ARGS] "
	       "[OPTIONS]\n\n"
	       "The endpoint and token come from the flags, else BUNSHIN_ENDPOINT and\n"
	       "BUNSHIN_TOKEN, else ~/.config/bunshin/config (lines 'endpoint = ...',\n"
	       "'token = ...'); the endpoint defaults to " CLI_DEFAULT_ENDPOINT ".\n"
	       "https:// servers are checked against the system's CAs, or the CA file of\n"
	       "--cacert, BUNSHIN_CACERT or the config's 'cacert = ...'.\n\n"
	       "Commands:\n");
	for (const struct cli_cmd *cmd = cli_cmds; cmd->resource; cmd++) {
		if (strcmp(last, cmd->resource))
			printf("\n");
		last = cmd->resource;
		printf("  %s %s %s\n      %s\n", cmd->resource, cmd->verb, cmd->args, cmd->help);
	}
	printf("\n'bunshin RESOURCE VERB --help' shows a command's options.\n\n"
	       "Exit status: 0 ok, 1 the API refused, 2 bad usage, 3 not found,\n"
	       "4 not authenticated or not allowed, 5 bunshind unreachable, 6 --wait timed out.\n");
}

static void cli_help_cmd(const struct cli_cmd *cmd)
{
	printf("usage: bunshin %s %s %s\n\n%s\n", cmd->resource, cmd->verb, cmd->args, cmd->help);
	if (cmd->opts[0].name)
		printf("\nOptions:\n");
	for (int i = 0; i < CLI_OPTS_MAX && cmd->opts[i].name; i++) {
		char left[64];

		snprintf(left, sizeof(left), "--%s%s%s", cmd->opts[i].name,
			 cmd->opts[i].arg ? " " : "", cmd->opts[i].arg ? cmd->opts[i].arg : "");
		printf("  %-24s %s\n", left, cmd->opts[i].help);
	}
}

static void cli_help_resource(const char *resource)
{
	printf("usage: bunshin %s VERB ...\n\n", resource);
	for (const struct cli_cmd *cmd = cli_cmds; cmd->resource; cmd++) {
		if (!strcmp(cmd->resource, resource))
			printf("  %s %s %s\n      %s\n", cmd->resource, cmd->verb, cmd->args,
			       cmd->help);
	}
}

const char *cli_opt(const struct cli *c, const char *name)
{
	for (int i = 0; i < CLI_OPTS_MAX && c->cmd->opts[i].name; i++) {
		if (!strcmp(c->cmd->opts[i].name, name))
			return c->optv[i];
	}
	return NULL;
}

/* ---- configuration ---- */

/* Reads "key = value" from ~/.config/bunshin/config into out (static storage). */
static const char *cli_conf(const char *key)
{
	static char vals[3][CLI_CONF_VALUE_MAX];
	static int used;
	const char *home = getenv("HOME");
	char path[1024], line[CLI_CONF_VALUE_MAX + 64];
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *found = NULL;
	FILE *f;

	if (xdg && *xdg)
		snprintf(path, sizeof(path), "%s/bunshin/config", xdg);
	else if (home)
		snprintf(path, sizeof(path), "%s/.config/bunshin/config", home);
	else
		return NULL;
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (!found && used < 3 && fgets(line, sizeof(line), f)) {
		char *k = line + strspn(line, " \t"), *eq = strchr(k, '='), *v, *end;

		if (*k == '#' || !eq)
			continue;
		end = eq;
		while (end > k && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = 0;
		if (strcmp(k, key))
			continue;
		v = eq + 1 + strspn(eq + 1, " \t");
		v[strcspn(v, "\r\n")] = 0;
		snprintf(vals[used], sizeof(vals[used]), "%s", v);
		found = vals[used++];
	}
	fclose(f);
	return found;
}

static void cli_resolve(struct cli *c)
{
	if (!c->endpoint)
		c->endpoint = getenv("BUNSHIN_ENDPOINT");
	if (!c->endpoint)
		c->endpoint = cli_conf("endpoint");
	if (!c->endpoint)
		c->endpoint = CLI_DEFAULT_ENDPOINT;
	if (!c->token)
		c->token = getenv("BUNSHIN_TOKEN");
	if (!c->token)
		c->token = cli_conf("token");
	if (!c->cacert)
		c->cacert = getenv("BUNSHIN_CACERT");
	if (!c->cacert)
		c->cacert = cli_conf("cacert");
	httpc_set_cacert(c->cacert);
}

/* ---- the API ---- */

void cli_path(char *out, size_t size, const char *prefix, const char *name, const char *suffix)
{
	size_t n = (size_t)snprintf(out, size, "%s", prefix);

	for (const unsigned char *p = (const unsigned char *)name; *p && n + 4 < size; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-_.~", *p))
			out[n++] = (char)*p;
		else
			n += (size_t)snprintf(out + n, size - n, "%%%02X", *p);
	}
	snprintf(out + n, size - n, "%s", suffix ? suffix : "");
}

static int cli_exit_for(int status)
{
	if (status == 404)
		return CLI_NOT_FOUND;
	if (status == 401 || status == 403)
		return CLI_AUTH;
	return CLI_API_ERROR;
}

static int cli_api_error(int status, const char *body)
{
	json_t *j = json_loads(body, 0, NULL);
	json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *field = json_string_value(json_object_get(e, "field"));

	if (msg)
		fprintf(stderr, "bunshin: %s%s%s%s (HTTP %d)\n", msg, field ? " [" : "",
			field ? field : "", field ? "]" : "", status);
	else
		fprintf(stderr, "bunshin: HTTP %d\n", status);
	json_decref(j);
	return cli_exit_for(status);
}

static int cli_answer(struct cli *c, int ret, struct httpc_response *resp, const struct error *err,
		      json_t **out, char **text);

int cli_call(struct cli *c, const char *method, const char *path, json_t *body, json_t **out,
	     char **text)
{
	struct httpc_request req = {.method = method, .path = path, .token = c->token};
	struct httpc_response resp;
	struct error err = {0};
	char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int ret;

	json_decref(body);
	req.body = b;
	ret = httpc_do(c->endpoint, &req, &resp, &err);
	free(b);
	return cli_answer(c, ret, &resp, &err, out, text);
}

int cli_call_req(struct cli *c, struct httpc_request *req, json_t **out)
{
	struct httpc_response resp;
	struct error err = {0};
	int ret;

	req->token = c->token;
	ret = httpc_do(c->endpoint, req, &resp, &err);
	return cli_answer(c, ret, &resp, &err, out, NULL);
}

static int cli_answer(struct cli *c, int ret, struct httpc_response *resp, const struct error *err,
		      json_t **out, char **text)
{
	if (ret) {
		fprintf(stderr, "bunshin: %s: %s\n", c->endpoint, err->msg);
		return CLI_UNREACHABLE;
	}
	if (resp->status >= 300) {
		ret = cli_api_error(resp->status, resp->body);
		httpc_response_free(resp);
		return ret;
	}
	if (text) {
		*text = resp->body;
		return CLI_OK;
	}
	if (out)
		*out = resp->len ? json_loads(resp->body, 0, NULL) : NULL;
	httpc_response_free(resp);
	if (out && resp->len && !*out) {
		fprintf(stderr, "bunshin: the answer is not JSON\n");
		return CLI_API_ERROR;
	}
	return CLI_OK;
}

/* ---- output ---- */

/* Times are Unix seconds in the API; people read them as UTC dates. */
static bool cli_is_time(const char *key)
{
	return !strcmp(key, "at") || !strcmp(key, "created") || !strcmp(key, "updated");
}

static void cli_cell(const char *key, const json_t *v, char *out, size_t size)
{
	if (json_is_integer(v) && cli_is_time(key)) {
		time_t t = (time_t)json_integer_value(v);
		struct tm tm;

		if (gmtime_r(&t, &tm) && strftime(out, size, "%Y-%m-%d %H:%M:%SZ", &tm))
			return;
	}
	if (json_is_string(v))
		snprintf(out, size, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(out, size, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, size, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(out, size, "%s", json_is_true(v) ? "true" : "false");
	else if (!v || json_is_null(v))
		snprintf(out, size, "-");
	else {
		char *s = json_dumps(v, JSON_COMPACT);

		snprintf(out, size, "%s", s ? s : "?");
		free(s);
	}
}

static void cli_table(json_t *rows, const char *const *cols)
{
	size_t w[16] = {0}, ncol = 0, i;
	char cell[256];
	json_t *row;

	for (; cols[ncol] && ncol < 16; ncol++)
		w[ncol] = strlen(cols[ncol]);
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncol; c++) {
			cli_cell(cols[c], json_object_get(row, cols[c]), cell, sizeof(cell));
			if (strlen(cell) > w[c])
				w[c] = strlen(cell);
		}
	}
	for (size_t c = 0; c < ncol; c++) {
		for (const char *p = cols[c]; *p; p++)
			putchar(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		printf("%*s", c + 1 < ncol ? (int)(w[c] - strlen(cols[c]) + 2) : 0, "");
	}
	putchar('\n');
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncol; c++) {
			cli_cell(cols[c], json_object_get(row, cols[c]), cell, sizeof(cell));
			printf(c + 1 < ncol ? "%-*s  " : "%-*s", c + 1 < ncol ? (int)w[c] : 0,
			       cell);
		}
		putchar('\n');
	}
}

void cli_print(const struct cli *c, json_t *v, const char *const *columns)
{
	const char *key;
	json_t *val;
	char cell[512];

	if (!v)
		return;
	if (c->json) {
		char *s = json_dumps(v, JSON_INDENT(2));

		if (s)
			puts(s);
		free(s);
		return;
	}
	if (json_is_array(v) && columns) {
		cli_table(v, columns);
		return;
	}
	json_object_foreach(v, key, val)
	{
		cli_cell(key, val, cell, sizeof(cell));
		printf("%-16s %s\n", key, cell);
	}
}

/* ---- the command line ---- */

/* Global options, accepted before or after the command. True when arg was one. */
static int cli_global(struct cli *c, int argc, char **argv, int *i, bool *was)
{
	const char *a = argv[*i];

	*was = true;
	if (!strcmp(a, "--json")) {
		c->json = true;
		return 0;
	}
	if (!strcmp(a, "--endpoint") || !strcmp(a, "--token") || !strcmp(a, "--cacert")) {
		if (*i + 1 >= argc)
			return cli_usage_error("%s needs a value", a);
		if (!strcmp(a, "--endpoint"))
			c->endpoint = argv[++*i];
		else if (!strcmp(a, "--token"))
			c->token = argv[++*i];
		else
			c->cacert = argv[++*i];
		return 0;
	}
	*was = false;
	return 0;
}

static int cli_set_opt(struct cli *c, int argc, char **argv, int *i)
{
	const char *name = argv[*i] + 2;

	for (int k = 0; k < CLI_OPTS_MAX && c->cmd->opts[k].name; k++) {
		if (strcmp(c->cmd->opts[k].name, name))
			continue;
		if (!c->cmd->opts[k].arg) {
			c->optv[k] = "";
			return 0;
		}
		if (*i + 1 >= argc)
			return cli_usage_error("--%s needs a value (%s)", name,
					       c->cmd->opts[k].arg);
		c->optv[k] = argv[++*i];
		return 0;
	}
	return cli_usage_error("%s %s: unknown option --%s", c->cmd->resource, c->cmd->verb, name);
}

static const struct cli_cmd *cli_find(const char *resource, const char *verb, bool *known)
{
	*known = false;
	for (const struct cli_cmd *cmd = cli_cmds; cmd->resource; cmd++) {
		if (strcmp(cmd->resource, resource))
			continue;
		*known = true;
		if (verb && !strcmp(cmd->verb, verb))
			return cmd;
	}
	return NULL;
}

/* Splits argv into globals, resource, verb, positionals and options; -1 for help shown. */
static int cli_parse(struct cli *c, int argc, char **argv)
{
	const char *words[2] = {NULL, NULL};
	int nwords = 0, ret;
	bool was, known, help = false;

	for (int i = 1; i < argc; i++) {
		if ((ret = cli_global(c, argc, argv, &i, &was)))
			return ret;
		if (was)
			continue;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help = true;
		} else if (nwords < 2 && argv[i][0] != '-') {
			words[nwords++] = argv[i];
			/* a command without a verb (`bunshin console NAME`): arguments follow */
			if (nwords == 1 && (c->cmd = cli_find(words[0], "", &known)))
				nwords = 2;
			else if (nwords == 2 && !(c->cmd = cli_find(words[0], words[1], &known)))
				return known ? cli_usage_error("%s: unknown verb '%s'", words[0],
							       words[1])
					     : cli_usage_error("unknown resource '%s'", words[0]);
		} else if (!c->cmd) {
			return cli_usage_error("unexpected '%s' before the command", argv[i]);
		} else if (!strncmp(argv[i], "--", 2)) {
			if ((ret = cli_set_opt(c, argc, argv, &i)))
				return ret;
		} else if (c->npos < c->cmd->npos) {
			c->pos[c->npos++] = argv[i];
		} else {
			return cli_usage_error("%s %s: unexpected argument '%s'", c->cmd->resource,
					       c->cmd->verb, argv[i]);
		}
	}
	if (help || !nwords) {
		if (c->cmd) {
			cli_help_cmd(c->cmd);
		} else if (!nwords) {
			cli_help_main();
		} else {
			cli_find(words[0], NULL, &known);
			if (!known)
				return cli_usage_error("unknown resource '%s'", words[0]);
			cli_help_resource(words[0]);
		}
		return help ? -1 : CLI_USAGE;
	}
	if (!c->cmd) {
		cli_find(words[0], NULL, &known);
		return known ? cli_usage_error("%s: a verb is needed", words[0])
			     : cli_usage_error("unknown resource '%s'", words[0]);
	}
	if (c->npos < c->cmd->npos)
		return cli_usage_error("%s %s: expected %s", c->cmd->resource, c->cmd->verb,
				       c->cmd->args);
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c = {0};
	int ret = cli_parse(&c, argc, argv);

	if (ret)
		return ret < 0 ? CLI_OK : ret;
	cli_resolve(&c);
	return c.cmd->fn(&c);
}

int cli_http_error(int status, const char *body)
{
	return cli_api_error(status, body);
}
