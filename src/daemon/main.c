// SPDX-License-Identifier: MIT
/* bunshind: options, start-up, the wait for a signal, shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "daemon.h"

enum {
	OPT_STATE_DIR = 256,
	OPT_LISTEN,
	OPT_VMM,
	OPT_GUEST,
	OPT_CPU_RATIO,
	OPT_RAM_RATIO,
	OPT_STOP_TIMEOUT,
	OPT_STOP_VMS,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_NO_JAIL,
	OPT_UID_BASE,
	OPT_GID_BASE,
	OPT_CGROUP_PARENT,
	OPT_NO_CGROUP,
	OPT_IMAGE_MAX_SIZE,
	OPT_NETWORK_POOL,
	OPT_IMDS_REQUIRE_TOKEN,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_MAX_FORWARDS,
};

static const struct option main_options[] = {
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"vmm", required_argument, NULL, OPT_VMM},
	{"guest", required_argument, NULL, OPT_GUEST},
	{"cpu-ratio", required_argument, NULL, OPT_CPU_RATIO},
	{"ram-ratio", required_argument, NULL, OPT_RAM_RATIO},
	{"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
	{"stop-vms-on-exit", no_argument, NULL, OPT_STOP_VMS},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{"help", no_argument, NULL, OPT_HELP},
	{"no-jail", no_argument, NULL, OPT_NO_JAIL},
	{"uid-base", required_argument, NULL, OPT_UID_BASE},
	{"gid-base", required_argument, NULL, OPT_GID_BASE},
	{"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
	{"no-cgroup", no_argument, NULL, OPT_NO_CGROUP},
	{"image-max-size", required_argument, NULL, OPT_IMAGE_MAX_SIZE},
	{"network-pool", required_argument, NULL, OPT_NETWORK_POOL},
	{"imds-require-token", no_argument, NULL, OPT_IMDS_REQUIRE_TOKEN},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"max-forwards", required_argument, NULL, OPT_MAX_FORWARDS},
	{NULL, 0, NULL, 0},
};

static void main_usage(FILE *f)
{
	fprintf(f,
		"usage: bunshind [options]\n"
		"\n"
		"  --state-dir DIR       state: state.db, images/, instances/ (default "
		"/var/lib/bunshin)\n"
		"  --listen unix:PATH    the API on a unix socket (default DIR/bunshind.sock)\n"
		"  --listen tcp:HOST:PORT\n"
		"                        the API on TCP (HTTPS with --tls-cert); repeatable\n"
		"  --vmm PATH            the bunshin-vmm binary (default: next to bunshind)\n"
		"  --guest PATH          the test guest ELF, registered as image test-guest\n"
		"  --cpu-ratio R         vCPUs per host CPU that may be handed out (default 4.0)\n"
		"  --ram-ratio R         RAM overcommit (default 1.0)\n"
		"  --stop-timeout S      seconds from the power button to a forced stop "
		"(default 30)\n"
		"  --stop-vms-on-exit    stop every VM when bunshind exits (default: leave them)\n"
		"  --verbose             more log output\n"
		"  --uid-base N          an instance's VMM runs as uid N+ID (default 100000)\n"
		"  --gid-base N          ... and gid N+ID (default: the uid base)\n"
		"  --cgroup-parent PATH  instances' cgroups: PATH/instance-ID (default bunshin,\n"
		"                        under bunshind's own cgroup; /PATH: under the root)\n"
		"  --no-cgroup           no cgroup per instance\n"
		"  --no-jail             for debugging: VMMs run unjailed, as root\n"
		"  --image-max-size SIZE the largest image an upload or qcow2 conversion may\n"
		"                        make (K, M, G, T suffixes; default 64G)\n"
		"  --network-pool CIDR   tenants' default networks: one /24 each from it\n"
		"                        (default " DAEMON_NETWORK_POOL ")\n"
		"  --imds-require-token  the metadata service's EC2 layout answers only\n"
		"                        with an IMDSv2 token (default: IMDSv1 too)\n"
		"  --tls-cert FILE       HTTPS on the TCP listeners: the certificate chain (PEM);\n"
		"                        the unix socket stays plain HTTP\n"
		"  --tls-key FILE        ... and its private key (PEM)\n"
		"  --max-forwards N      port forwards a tenant may hold (default 10)\n");
}

static int main_ratio(const char *arg, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v > 0 && v <= 1024))
		return -1;
	*out = v;
	return 0;
}

/* The sandbox's options (jail.c). */
static int main_jail_opt(int c, const char *arg, struct daemon_opts *o, struct error *err)
{
	switch (c) {
	case OPT_NO_JAIL:
		o->no_jail = true;
		return 0;
	case OPT_NO_CGROUP:
		o->no_cgroup = true;
		return 0;
	case OPT_CGROUP_PARENT:
		/* the VMM checks the whole --cgroup PATH/instance-ID again */
		if (strlen(arg) > 200 || !arg[strspn(arg, "/")] || strstr(arg, ".."))
			return error_set(err, EINVAL, "--cgroup-parent: '%s' is not a cgroup path",
					 arg);
		o->cgroup_parent = arg;
		return 0;
	}
	if (parse_uint(arg, 1, 0xfffffffeULL, c == OPT_UID_BASE ? &o->uid_base : &o->gid_base))
		return error_set(err, EINVAL, "--%s: '%s' is not a number from 1 (0 is root's)",
				 c == OPT_UID_BASE ? "uid-base" : "gid-base", arg);
	return 0;
}

static int main_network_pool(struct daemon_opts *o, struct error *err)
{
	unsigned int prefix;
	uint32_t base;

	if (!o->network_pool)
		o->network_pool = DAEMON_NETWORK_POOL;
	return netd_pool_parse(o->network_pool, &base, &prefix, err);
}

/* The option's error, or 0; exits for --help. */
static int main_parse(int argc, char **argv, struct daemon_opts *o, struct error *err)
{
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "", main_options, NULL)) != -1) {
		switch (c) {
		case OPT_STATE_DIR:
			o->state_dir = optarg;
			break;
		case OPT_LISTEN:
			if (o->nlisten == DAEMON_LISTEN_MAX)
				return error_set(err, E2BIG, "--listen: at most %d",
						 DAEMON_LISTEN_MAX);
			if (strncmp(optarg, "unix:", 5) && strncmp(optarg, "tcp:", 4))
				return error_set(err, EINVAL,
						 "--listen: '%s' is not unix:PATH or tcp:HOST:PORT",
						 optarg);
			o->listen[o->nlisten++] = optarg;
			break;
		case OPT_VMM:
			o->vmm = optarg;
			break;
		case OPT_GUEST:
			o->guest = optarg;
			break;
		case OPT_CPU_RATIO:
		case OPT_RAM_RATIO:
			if (main_ratio(optarg, c == OPT_CPU_RATIO ? &o->cpu_ratio : &o->ram_ratio))
				return error_set(
					err, EINVAL, "--%s: '%s' is not a ratio between 0 and 1024",
					c == OPT_CPU_RATIO ? "cpu-ratio" : "ram-ratio", optarg);
			break;
		case OPT_STOP_TIMEOUT:
			if (parse_uint(optarg, 0, 3600, &v))
				return error_set(err, EINVAL,
						 "--stop-timeout: '%s' is not 0 to 3600 seconds",
						 optarg);
			o->stop_timeout_s = (unsigned int)v;
			break;
		case OPT_STOP_VMS:
			o->stop_vms_on_exit = true;
			break;
		case OPT_IMDS_REQUIRE_TOKEN:
			o->imds_require_token = true;
			break;
		case OPT_VERBOSE:
			log_set_level(LOG_DEBUG);
			break;
		case OPT_HELP:
			main_usage(stdout);
			exit(0);
		case OPT_NO_JAIL:
		case OPT_UID_BASE:
		case OPT_GID_BASE:
		case OPT_CGROUP_PARENT:
		case OPT_NO_CGROUP:
			if (main_jail_opt(c, optarg, o, err))
				return -err->code;
			break;
		case OPT_IMAGE_MAX_SIZE:
			if (parse_size(optarg, &v) || !v)
				return error_set(err, EINVAL,
						 "--image-max-size: '%s' is not a size", optarg);
			o->image_max_size = v;
			break;
		case OPT_NETWORK_POOL:
			o->network_pool = optarg;
			break;
		case OPT_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			o->tls_key = optarg;
			break;
		case OPT_MAX_FORWARDS:
			if (parse_uint(optarg, 0, 65535, &v))
				return error_set(err, EINVAL,
						 "--max-forwards: '%s' is not 0 to 65535", optarg);
			o->max_forwards = (int64_t)v;
			break;
		default:
			return error_set(err, EINVAL, "see bunshind --help");
		}
	}
	if (optind < argc)
		return error_set(err, EINVAL, "unexpected argument '%s'", argv[optind]);
	if (!o->gid_base)
		o->gid_base = o->uid_base;
	return main_network_pool(o, err);
}

/* --vmm, else bunshin-vmm beside this program (installed) or in ../vmm (the build tree). */
static int main_find_vmm(struct daemon_opts *o, struct error *err)
{
	static char found[PATH_MAX];
	static const char *const rel[] = {"bunshin-vmm", "../vmm/bunshin-vmm"};
	char self[PATH_MAX];
	ssize_t n;

	if (o->vmm) {
		if (!realpath(o->vmm, found) || access(found, X_OK))
			return error_set(err, ENOENT, "--vmm: %s is not an executable", o->vmm);
		o->vmm = found;
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return error_set(err, errno, "/proc/self/exe: %s", strerror(errno));
	self[n] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
		char cand[PATH_MAX + 32];

		snprintf(cand, sizeof(cand), "%s/%s", dirname(strdupa(self)), rel[i]);
		if (realpath(cand, found) && !access(found, X_OK)) {
			o->vmm = found;
			return 0;
		}
	}
	return error_set(err, ENOENT, "cannot find bunshin-vmm: give --vmm PATH");
}

#define MAIN_LOCK_WAIT_MS 3000

/*
 * The state directory's lock. A bunshind killed while a VMM it forked had
 * not exec'd yet leaves that child holding the lock (the flock is the open
 * file's, which the fork shares) for the moment until its exec closes it:
 * wait that long, not forever (another live bunshind holds it for good).
 */
static int main_lock(int fd)
{
	for (int i = 0; i < MAIN_LOCK_WAIT_MS / 10; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return 0;
		usleep(10000);
	}
	return flock(fd, LOCK_EX | LOCK_NB);
}

/* The state directory and its parts; the lock keeps a second bunshind off it. */
static int main_state_dir(struct daemon *d, struct error *err)
{
	static const char *const subdirs[] = {"/images", "/instances"};
	static const char sock_tail[] = "/instances/99999999999/api.sock";
	static char abs_dir[PATH_MAX];
	char path[4200];
	int fd;

	if (mkdir(d->opts.state_dir, 0700) && errno != EEXIST)
		return error_set(err, errno, "%s: %s", d->opts.state_dir, strerror(errno));
	/* Absolute, so that VMM paths stay right whatever the next start's cwd. */
	if (!realpath(d->opts.state_dir, abs_dir))
		return error_set(err, errno, "%s: %s", d->opts.state_dir, strerror(errno));
	d->opts.state_dir = abs_dir;
	/* Each VMM's API socket is DIR/instances/ID/api.sock, and sun_path is short. */
	if (strlen(abs_dir) + sizeof(sock_tail) > 108)
		return error_set(err, ENAMETOOLONG,
				 "%s: too long a path for the VMMs' unix sockets (at most %zu)",
				 abs_dir, 108 - sizeof(sock_tail));
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		snprintf(path, sizeof(path), "%s%s", abs_dir, subdirs[i]);
		if (mkdir(path, 0700) && errno != EEXIST)
			return error_set(err, errno, "%s: %s", path, strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/bunshind.lock", abs_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	if (main_lock(fd))
		return error_set(err, EBUSY, "%s: another bunshind uses this state directory",
				 abs_dir);
	/* Held (and never closed) for the process's life. */
	snprintf(d->db_path, sizeof(d->db_path), "%s/state.db", abs_dir);
	return 0;
}

static void main_host(struct daemon *d)
{
	struct sysinfo si;

	d->host_cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (!sysinfo(&si))
		d->host_ram_mib = (uint64_t)si.totalram * si.mem_unit / MiB;
}

static int main_listen(struct daemon *d, struct error *err)
{
	static char def[4200];
	struct httpd_opts ho = {.threads = DAEMON_API_THREADS,
				.max_connections = 256,
				.nested_errors = true,
				.stream = &dimage_stream_ops,
				/* an instance's 64 KiB of user data, in base64 */
				.body_max = 128 * 1024,
				.tls_cert_pem = d->tls_cert_pem,
				.tls_key_pem = d->tls_key_pem};

	if (!d->opts.nlisten) {
		snprintf(def, sizeof(def), "unix:%s/bunshind.sock", d->opts.state_dir);
		d->opts.listen[d->opts.nlisten++] = def;
	}
	for (unsigned int i = 0; i < d->opts.nlisten; i++) {
		d->httpd[i] = httpd_start_opts(d->opts.listen[i], &ho, daemon_routes, d, err);
		if (!d->httpd[i])
			return -err->code;
		dtls_warn_plain(d, d->opts.listen[i]);
		printf("bunshind: listening on %s%s\n", d->opts.listen[i],
		       d->tls_cert_pem && !strncmp(d->opts.listen[i], "tcp:", 4) ? " (HTTPS)" : "");
	}
	fflush(stdout);
	return 0;
}

/* What the instances' sandbox will be, said once. */
static void main_sandbox(struct daemon *d)
{
	const char *cg = d->opts.no_jail || d->opts.no_cgroup ? NULL : djail_cgroup_probe(d);

	d->cgroups = cg != NULL;
	if (d->opts.no_jail)
		log_warn("--no-jail: VMMs run unjailed, as root (for debugging only)");
	else
		log_info("VMMs jailed in their instance directories as uid %llu+ID, gid "
			 "%llu+ID; cgroups: %s",
			 (unsigned long long)d->opts.uid_base, (unsigned long long)d->opts.gid_base,
			 cg		     ? cg
			 : d->opts.no_cgroup ? "none (--no-cgroup)"
					     : "none (no cpu, memory and pids controllers here)");
}

static int main_run(struct daemon *d, struct error *err)
{
	sigset_t set;
	int sig = 0;

	/* Blocked before any thread starts, so only sigwait() below sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	main_host(d);
	/* before anything is started: a bad certificate must cost nothing */
	if (dtls_load(d, err) || main_find_vmm(&d->opts, err) || main_state_dir(d, err))
		return -err->code;
	main_sandbox(d);
	d->pool = pool_open(d->db_path, DAEMON_API_THREADS + 4, err);
	if (!d->pool || bootstrap_first_start(d, err) || supervisor_start(d, err) ||
	    supervisor_adopt_all(d, err))
		return -err->code;
	simg_recover(d);
	/* Instances without their links fail to start, saying why; the rest serves on. */
	if (netd_reconcile(d, err))
		log_warn("networks: %s", err->msg);
	if (main_listen(d, err))
		return -err->code;
	log_info("ready: VMM %s, %ld CPUs, %llu MiB", d->opts.vmm, d->host_cpus,
		 (unsigned long long)d->host_ram_mib);
	while (sigwait(&set, &sig) || sig == SIGHUP)
		;
	log_info("signal %d: shutting down%s", sig,
		 d->opts.stop_vms_on_exit ? " and stopping the VMs" : "; the VMs keep running");
	return 0;
}

static void main_cleanup(struct daemon *d)
{
	for (unsigned int i = 0; i < d->opts.nlisten; i++)
		httpd_stop(d->httpd[i]);
	if (d->pool)
		supervisor_shutdown(d);
	simg_shutdown();
	pool_close(d->pool);
	djail_cgroup_parent_remove(d);
	dtls_free(d);
}

int main(int argc, char **argv)
{
	struct daemon d = {.opts = {.state_dir = "/var/lib/bunshin",
				    .cpu_ratio = 4.0,
				    .ram_ratio = 1.0,
				    .disk_ratio = 1.0,
				    .stop_timeout_s = 30,
				    .uid_base = 100000,
				    .cgroup_parent = "bunshin",
				    .image_max_size = 64ULL << 30,
				    .max_forwards = 10}};
	struct error err = {0};
	int ret;

	log_init("bunshind", LOG_INFO);
	if (main_parse(argc, argv, &d.opts, &err)) {
		fprintf(stderr, "bunshind: %s\n", err.msg);
		return 2;
	}
	/*
	 * A descriptor per VM (its pidfd) and per connection: past the usual
	 * soft limit of 1024 with a thousand instances.
	 */
	ret = fd_limit_raise();
	if (ret)
		log_warn("cannot raise RLIMIT_NOFILE to its hard limit: %s", strerror(-ret));
	ret = main_run(&d, &err);
	if (ret)
		fprintf(stderr, "bunshind: %s\n", err.msg);
	main_cleanup(&d);
	return ret ? 1 : 0;
}
