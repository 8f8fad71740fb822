// SPDX-License-Identifier: MIT
/*
 * A starting bunshind re-adopts the VMMs that outlived the one before:
 * found by their command line in /proc (the truth, whatever the store
 * says), pinned by a pidfd, asked their state through their API. Stored
 * instances without a VMM become ERROR (or STOPPED if they were
 * stopping); VMMs without an instance (being deleted when bunshind died)
 * are killed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "../common/httpc.h"
#include "../common/log.h"
#include "../common/procname.h"
#include "supervisor.h"

#define SUP_SPAWN_WAIT_MS 3000

/* A VMM found running: which instance's (from its --api-sock) and its pid. */
struct sup_found {
	int64_t id;
	pid_t pid;
	bool claimed;
};

/* The ID of "PREFIXID" + tail exactly, or 0. */
static int64_t sup_path_id(const char *path, const char *prefix, size_t plen, const char *tail)
{
	char *rest;
	long long id;

	if (strncmp(path, prefix, plen))
		return 0;
	id = strtoll(path + plen, &rest, 10);
	return id > 0 && !strcmp(rest, tail) ? id : 0;
}

/*
 * The instance id in "--api-sock STATE/instances/ID/api.sock" (unjailed)
 * or "--jail STATE/instances/ID" (jailed, whose socket is the jail's
 * /api.sock), or 0: not one of ours.
 */
static int64_t sup_cmdline_id(const struct daemon *d, const char *cmd, size_t len)
{
	char prefix[4200];
	size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "%s/instances/", d->opts.state_dir);
	const char *end = cmd + len;

	for (const char *a = cmd; a < end; a += strlen(a) + 1) {
		const char *next = a + strlen(a) + 1;
		int64_t id = 0;

		if (next >= end)
			break;
		if (!strcmp(a, "--api-sock"))
			id = sup_path_id(next, prefix, plen, "/api.sock");
		else if (!strcmp(a, "--jail"))
			id = sup_path_id(next, prefix, plen, "");
		if (id)
			return id;
	}
	return 0;
}

/* Whether process pid is named name (/proc/PID/comm). */
static bool sup_comm_is(const char *pid, const char *name)
{
	char path[300], comm[32] = "";
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	len = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return len > 0 && comm[len - 1] == '\n' && (size_t)len - 1 == strlen(name) &&
	       !strncmp(comm, name, (size_t)len - 1);
}

/*
 * Every live VMM of this state directory, found by its command line: the
 * truth, whatever the store says (bunshind may have been killed between
 * starting a VMM and recording its pid).
 */
static size_t sup_scan(const struct daemon *d, struct sup_found **out)
{
	DIR *proc = opendir("/proc");
	struct sup_found *found = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;

	while (proc && (e = readdir(proc))) {
		char path[300], cmd[8192];
		pid_t pid = (pid_t)atoi(e->d_name);
		int64_t id;
		ssize_t len;
		int fd;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (len <= 0)
			continue;
		cmd[len] = 0;
		id = sup_cmdline_id(d, cmd, (size_t)len);
		/*
		 * A VMM's clone spawner has its command line but is not a VMM;
		 * nor is a jailed VMM (in its own PID namespace) the process
		 * bunshind watches: that is its launcher, whose command line
		 * it shares and which exits with its status.
		 */
		if (!id || !sup_start_time(pid) || sup_comm_is(e->d_name, PROCNAME_VMM_SPAWNER) ||
		    djail_other_pidns(pid))
			continue;
		if (n == cap) {
			struct sup_found *p = realloc(found, (cap = cap * 2 + 16) * sizeof(*p));

			if (!p)
				break;
			found = p;
		}
		found[n++] = (struct sup_found){.id = id, .pid = pid};
	}
	if (proc)
		closedir(proc);
	*out = found;
	return n;
}

/*
 * Asks a live VMM what it is doing: *state becomes "running" or "paused".
 * False when its API does not answer (yet: it may be starting).
 */
static bool sup_vmm_state(const char *sock, const char **state)
{
	struct httpc_request req = {
		.method = "GET", .path = "/vm", .timeout_ms = SUP_VMM_API_TIMEOUT};
	struct httpc_response resp;
	struct error err = {0};
	char ep[64];
	json_t *j;
	int fd = djail_sock_ep(sock, ep, sizeof(ep)), ret;

	if (fd < 0)
		return false;
	ret = httpc_do(ep, &req, &resp, &err);
	close(fd);
	if (ret)
		return false;
	j = json_loads(resp.body, 0, NULL);
	*state = ST_RUNNING;
	if (j && !strcmp(sup_str(j, "state") ?: "", "paused"))
		*state = ST_PAUSED;
	json_decref(j);
	httpc_response_free(&resp);
	return true;
}

/* Watches a VMM found alive for this instance; false when it is gone meanwhile. */
static bool sup_adopt_live(struct daemon *d, struct store *s, const json_t *inst, pid_t pid)
{
	int64_t id = sup_int(inst, "id");
	const char *state = sup_str(inst, "state");
	struct store_instance_run run = {.state = ST_RUNNING};
	char dir[4096], sock[4200];
	struct error err = {0};
	int fd = pidfd_open(pid, 0);

	/* The pidfd pins the process; its start time, read after, cannot be a successor's. */
	run.pid_start = fd >= 0 ? sup_start_time(pid) : 0;
	if (!run.pid_start) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	supervisor_instance_dir(d, id, dir, sizeof(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	if (!strcmp(state, ST_STOPPING))
		run.state = ST_STOPPING;
	else if (!sup_vmm_state(sock, &run.state))
		run.state = ST_STARTING; /* running once its API answers */
	run.pid = pid;
	run.api_sock = sock;
	STORE(s, instance_set_run, id, &run, &err);
	sup_write_pidfile(dir, pid, run.pid_start);
	sup_watch_add(d->sup, id, pid, fd, false);
	if (!strcmp(run.state, ST_STARTING))
		sup_watch_ready(d, id, pid, run.pid_start, sock);
	/* A stop (or a delete) was under way when bunshind died: finish it. */
	if (!strcmp(run.state, ST_STOPPING) && supervisor_stop_async(d, id, true, &err))
		log_warn("instance %lld: %s", (long long)id, err.msg);
	log_info("instance %lld: re-adopted VMM pid %d (%s, was %s)", (long long)id, (int)pid,
		 run.state, state);
	return true;
}

/* No VMM for this instance: what the store said it was doing decides what it is now. */
static void sup_adopt_gone(struct store *s, const json_t *inst)
{
	int64_t id = sup_int(inst, "id");
	const char *state = sup_str(inst, "state");
	struct store_instance_run run = {.state = ST_STOPPED};
	struct error err = {0};
	char why[256];

	if (!strcmp(state, ST_STOPPED) || !strcmp(state, ST_ERROR) || !strcmp(state, ST_SUSPENDED))
		return;
	if (strcmp(state, ST_STOPPING)) {
		snprintf(why, sizeof(why),
			 sup_int(inst, "pid")
				 ? "VMM (pid %lld) is gone: it ended while bunshind was not running"
				 : "bunshind stopped before the VMM started (pid %lld)",
			 (long long)sup_int(inst, "pid"));
		run.state = ST_ERROR;
		run.error = why;
	}
	STORE(s, instance_set_run, id, &run, &err);
	log_warn("instance %lld: %s", (long long)id, run.error ? run.error : "stopped");
}

static void sup_kill_orphan(struct sup_found *f)
{
	int fd = pidfd_open(f->pid, 0);

	log_warn("VMM pid %d of deleted instance %lld: killed", (int)f->pid, (long long)f->id);
	if (fd >= 0) {
		pidfd_send_signal(fd, SIGKILL, NULL, 0);
		close(fd);
	}
}

/* Instance directories without an instance: a delete that bunshind died in the middle of. */
static void sup_sweep_dirs(struct daemon *d, json_t *list)
{
	char path[4200];
	struct dirent *e;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/instances", d->opts.state_dir);
	dir = opendir(path);
	while (dir && (e = readdir(dir))) {
		long long id = atoll(e->d_name);
		bool known = false;
		json_t *inst;
		size_t i;

		if (id <= 0)
			continue;
		json_array_foreach(list, i, inst) known |= sup_int(inst, "id") == id;
		if (!known) {
			log_info("removing the directory of deleted instance %lld", id);
			supervisor_remove_dir(d, id);
		}
	}
	if (dir)
		closedir(dir);
}

/* Whether some process is a VMM between a bunshind's fork and its exec. */
static bool sup_spawning(void)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	bool found = false;

	while (proc && !found && (e = readdir(proc)))
		found = atoi(e->d_name) > 0 && sup_comm_is(e->d_name, PROCNAME_DAEMON_FORK);
	if (proc)
		closedir(proc);
	return found;
}

/*
 * A bunshind killed between fork and exec leaves a VMM that no command
 * line names yet: it would be missed, its instance marked ERROR, and then
 * run on as an orphan. Such a child execs within moments; wait for it (a
 * bounded wait: one that never execs is logged and left to exit).
 */
static void sup_wait_spawning(void)
{
	for (int i = 0; i < SUP_SPAWN_WAIT_MS / 10; i++) {
		if (!sup_spawning())
			return;
		usleep(10000);
	}
	log_warn("a VMM process is still between fork and exec after %d ms", SUP_SPAWN_WAIT_MS);
}

int supervisor_adopt_all(struct daemon *d, struct error *err)
{
	struct store *s = pool_get(d->pool);
	struct sup_found *found = NULL;
	size_t nfound, i;
	json_t *list = NULL, *inst;
	int ret;

	sup_wait_spawning();
	nfound = sup_scan(d, &found);
	ret = STORE(s, instance_list, 0, &list, err);
	json_array_foreach(list, i, inst)
	{
		bool live = false;

		for (size_t k = 0; k < nfound && !live; k++) {
			if (found[k].id != sup_int(inst, "id") || found[k].claimed)
				continue;
			found[k].claimed = true;
			live = sup_adopt_live(d, s, inst, found[k].pid);
		}
		if (!live)
			sup_adopt_gone(s, inst);
	}
	/* A VMM whose instance row is gone was being deleted when bunshind died. */
	for (i = 0; !ret && i < nfound; i++) {
		if (!found[i].claimed)
			sup_kill_orphan(&found[i]);
	}
	if (!ret)
		sup_sweep_dirs(d, list);
	free(found);
	json_decref(list);
	pool_put(d->pool, s);
	return ret;
}
