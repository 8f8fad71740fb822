/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_CLI_CLI_H
#define BUNSHIN_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>

/*
 * bunshin, the command line client of bunshind: `bunshin RESOURCE VERB
 * [ARGS] [--OPTIONS]`. Every command is a row of a table (commands.c)
 * naming its arguments and options, so parsing, --help and completion
 * come from one place.
 */

/* Exit codes, the same for every command (scripts test them). */
enum cli_exit {
	CLI_OK = 0,
	CLI_API_ERROR = 1,   /* bunshind refused (409, 400 from the server, 5xx) */
	CLI_USAGE = 2,	     /* bad command line */
	CLI_NOT_FOUND = 3,   /* 404 */
	CLI_AUTH = 4,	     /* 401, 403 */
	CLI_UNREACHABLE = 5, /* no answer from bunshind */
	CLI_TIMEOUT = 6,     /* --wait gave up */
};

#define CLI_POS_MAX  4
#define CLI_OPTS_MAX 10

struct cli_opt {
	const char *name; /* without the dashes */
	const char *arg;  /* the value's name in --help, NULL for a flag */
	const char *help;
};

struct cli;

struct cli_cmd {
	const char *resource;
	const char *verb;
	const char *args; /* positional arguments, for --help: "NAME" */
	int npos;	  /* how many positional arguments (min = max: no optional ones) */
	const char *help;
	struct cli_opt opts[CLI_OPTS_MAX];
	int (*fn)(struct cli *c);
};

struct cli {
	const char *endpoint;
	const char *token;
	const char *cacert; /* https:// endpoints: the CA file (--cacert, BUNSHIN_CACERT, config) */
	bool json;
	const struct cli_cmd *cmd;
	const char *pos[CLI_POS_MAX];
	int npos;
	const char *optv[CLI_OPTS_MAX]; /* by the command's option index; "" for a set flag */
};

extern const struct cli_cmd cli_cmds[];

/* The value of the command's option, or NULL when it was not given. */
const char *cli_opt(const struct cli *c, const char *name);

/*
 * One API call. body may be NULL (the reference is taken). On success
 * returns CLI_OK with *out (JSON, may be NULL) or *text (when asked for);
 * otherwise prints why and returns the exit code for it.
 */
int cli_call(struct cli *c, const char *method, const char *path, json_t *body, json_t **out,
	     char **text);

/* cli_call() with a request of the caller's making (a streamed body): the token is added. */
struct httpc_request;
int cli_call_req(struct cli *c, struct httpc_request *req, json_t **out);

/* cli_call() that prints the answer (an object, or a table of cols). */
int cli_send(struct cli *c, const char *method, const char *path, json_t *body,
	     const char *const *cols);
/* --timeout's seconds for --wait (default 120); a usage error when bad. */
int cli_wait_secs(struct cli *c, int *secs);
/* Polls until the server is in state want (or error), a spinner on a terminal meanwhile. */
int cli_wait(struct cli *c, const char *ref, const char *want, int secs);

/* lifecycle.c: server reboot and resize. */
int cli_server_reboot(struct cli *c);
int cli_server_resize(struct cli *c);
int cli_server_rebuild(struct cli *c);
/* server console --follow: until interrupted, or the server is gone. */
int cli_server_console_follow(struct cli *c);
/* clone.c: server clone. */
int cli_server_clone(struct cli *c);

/* console.c: bunshin console NAME, server console NAME --attach. */
int cli_console_attach(struct cli *c);
/* Prints an API error answer (JSON body) and returns the exit code for its status. */
int cli_http_error(int status, const char *body);

/* forward.c: server expose, unexpose, forwards. */
int cli_server_expose(struct cli *c);
int cli_server_unexpose(struct cli *c);
int cli_server_forwards(struct cli *c);

/* upload.c */
int cli_image_upload(struct cli *c);

/* keypair.c: keypair import, and server create's --key and --user-data into body. */
int cli_keypair_import(struct cli *c);
int cli_keypair_list(struct cli *c);
int cli_keypair_show(struct cli *c);
int cli_keypair_delete(struct cli *c);
int cli_server_meta_fields(struct cli *c, json_t *body);
/* Option --opt into body's field: an integer >= 0 (a usage error otherwise), a string. */
int cli_int_field(struct cli *c, json_t *body, const char *opt, const char *field);
void cli_str_field(struct cli *c, json_t *body, const char *opt, const char *field);

/* ops.c: quota move; image import's --initrd (made absolute: the daemon reads it). */
int cli_quota_move(struct cli *c);
int cli_image_initrd_field(struct cli *c, json_t *body);

/* server_image.c: server image, a raw image of a server's disk (--wait: until active). */
int cli_server_image(struct cli *c);

/* Prints an object (--json, else "key: value" lines) or an array as a table of these columns. */
void cli_print(const struct cli *c, json_t *v, const char *const *columns);

/* "/v1/instances/" + the name, escaped. */
void cli_path(char *out, size_t size, const char *prefix, const char *name, const char *suffix);

__attribute__((format(printf, 1, 2))) int cli_usage_error(const char *fmt, ...);

#endif
