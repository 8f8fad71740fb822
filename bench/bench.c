// SPDX-License-Identifier: MIT
/*
 * bench: the measuring half of bench/run.sh.
 *
 *   bench measure start   TIMEOUT_S -- PROGRAM [ARG...]
 *   bench measure line    TIMEOUT_S LINE -- PROGRAM [ARG...]
 *   bench measure rss     TIMEOUT_S LINE RAM_MAPPING -- PROGRAM [ARG...]
 *   bench table RESULTS
 *
 * "measure" starts one VMM with its stdin and stdout on pipes and its
 * stderr on a file (BENCH_STDERR, default /dev/null), waits for an event
 * on its console, samples the process the moment the event arrives, kills
 * it and prints one line of key=value pairs:
 *
 *   start  the first byte on stdout (the test guest writes one to COM1 as
 *          its first instruction): wall_ms, cpu_ms, sched_ms, byte
 *   line   the first console line containing LINE: wall_ms, cpu_ms,
 *          sched_ms, then the line from LINE on
 *   rss    the first console line containing LINE, then /proc/PID/smaps:
 *          rss_kib (every mapping except RAM_MAPPING), ram_kib (RAM_MAPPING),
 *          then the line from LINE on
 *
 * wall_ms runs from just before the VMM is spawned. cpu_ms is the VMM's
 * thread-group CPU clock (clock_getcpuclockid): nanoseconds on a CPU of
 * every thread, live or already exited, including the part of the current
 * time slice of a thread that is running right now. sched_ms is the sum
 * of the first field of /proc/PID/task/ * /schedstat read right after:
 * live threads only, and only up to their last accounting update.
 *
 * "table" reads lines "METRIC VMM VALUE" (VMM is bunshin or qemu) and
 * prints the markdown table: median, min and max per VMM, the ratio of the
 * medians (bunshin/QEMU, lower is better) and the target where one exists.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONSOLE_MAX (1 << 20) /* console bytes kept while looking for a line */

extern char **environ;

static pid_t child_pid = -1;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
	}
	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void on_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- sampling a running VMM ---- */

static int64_t process_cpu_ns(pid_t pid)
{
	struct timespec ts;
	clockid_t cid;
	int rc;

	rc = clock_getcpuclockid(pid, &cid);
	if (rc)
		die("clock_getcpuclockid(%d): %s", (int)pid, strerror(rc));
	if (clock_gettime(cid, &ts) < 0)
		die("clock_gettime(CPU clock of %d): %s", (int)pid, strerror(errno));
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t schedstat_ns(pid_t pid)
{
	char path[320], line[128];
	struct dirent *de;
	int64_t sum = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		die("%s: %s", path, strerror(errno));
	while ((de = readdir(dir))) {
		unsigned long long ns;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* the thread exited meanwhile */
		if (fgets(line, sizeof(line), f) && sscanf(line, "%llu", &ns) == 1)
			sum += (int64_t)ns;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

/*
 * Sum Rss over /proc/PID/smaps, apart for the mappings whose path is
 * exactly ram_name (guest RAM) and together for all the others.
 */
static void smaps_rss(pid_t pid, const char *ram_name, uint64_t *other_kib, uint64_t *ram_kib)
{
	char path[64], line[4096];
	bool in_ram = false;
	size_t ram_maps = 0;
	FILE *f;

	*other_kib = 0;
	*ram_kib = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi, kib;
		int name_at = -1;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &lo, &hi, &name_at) == 2 &&
		    name_at > 0) {
			in_ram = strcmp(line + name_at, ram_name) == 0;
			ram_maps += in_ram;
			continue;
		}
		if (sscanf(line, "Rss: %llu kB", &kib) == 1) {
			if (in_ram)
				*ram_kib += kib;
			else
				*other_kib += kib;
		}
	}
	fclose(f);
	if (!ram_maps)
		die("no mapping named \"%s\" in %s: cannot tell guest RAM apart", ram_name, path);
}

/* ---- one measurement ---- */

enum mode {
	MODE_START,
	MODE_LINE,
	MODE_RSS,
};

struct spawned {
	pid_t pid;
	int out_fd; /* the VMM's stdout */
	int in_fd;  /* the VMM's stdin, kept open so it never sees EOF */
};

static struct spawned spawn_vmm(char **argv, int64_t *t0)
{
	const char *err_path = getenv("BENCH_STDERR");
	posix_spawn_file_actions_t fa;
	int out[2], in[2], rc;
	struct spawned s;

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_path ? err_path : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	*t0 = now_ns();
	rc = posix_spawnp(&s.pid, argv[0], &fa, NULL, argv, environ);
	if (rc)
		die("cannot start %s: %s", argv[0], strerror(rc));
	child_pid = s.pid;
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	s.out_fd = out[0];
	s.in_fd = in[1];
	return s;
}

/* Ends the VMM: nothing it does after the sample matters. */
static void reap(struct spawned *s)
{
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	child_pid = -1;
	close(s->out_fd);
	close(s->in_fd);
}

/*
 * The first complete console line that contains want (firmware may have
 * left text without a line end before it): where want starts and the
 * length from there to the end of the line, or -1.
 */
static ssize_t find_line(const char *buf, size_t len, const char *want, size_t *at)
{
	size_t n = strlen(want);
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		const char *hit;
		size_t end = i;

		if (buf[i] != '\n')
			continue;
		hit = memmem(buf + start, i - start, want, n);
		if (hit) {
			while (end > start && buf[end - 1] == '\r')
				end--;
			*at = (size_t)(hit - buf);
			return (ssize_t)(end - *at);
		}
		start = i + 1;
	}
	return -1;
}

static void show_console_tail(const char *buf, size_t len)
{
	size_t from = len > 2000 ? len - 2000 : 0;

	fprintf(stderr, "bench: console so far (%zu bytes):\n", len);
	fwrite(buf + from, 1, len - from, stderr);
	fputc('\n', stderr);
}

static int measure(enum mode mode, double timeout_s, const char *want, const char *ram_name,
		   char **argv)
{
	static char console[CONSOLE_MAX];
	int64_t t0, t1 = 0, deadline, cpu, sched = 0;
	uint64_t other_kib = 0, ram_kib = 0;
	size_t len = 0, line_at = 0;
	ssize_t line_len = -1;
	struct spawned s;
	bool done = false;

	s = spawn_vmm(argv, &t0);
	deadline = t0 + (int64_t)(timeout_s * 1e9);
	while (!done) {
		struct pollfd p = {.fd = s.out_fd, .events = POLLIN};
		int64_t left = deadline - now_ns();
		ssize_t r;

		if (left <= 0) {
			show_console_tail(console, len);
			die("%s: timed out after %.0f s", argv[0], timeout_s);
		}
		if (poll(&p, 1, (int)(left / 1000000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (!p.revents)
			continue;
		r = read(s.out_fd, console + len, sizeof(console) - 1 - len);
		t1 = now_ns();
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int status = 0;

			waitpid(s.pid, &status, 0);
			child_pid = -1;
			show_console_tail(console, len);
			die("%s closed its console before the event (exit status %d)", argv[0],
			    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		}
		len += (size_t)r;
		if (mode == MODE_START)
			done = true;
		else
			done = (line_len = find_line(console, len, want, &line_at)) >= 0;
		if (!done && len == sizeof(console) - 1)
			die("%s: %zu console bytes without the line \"%s\"", argv[0], len, want);
	}
	cpu = process_cpu_ns(s.pid);
	if (mode == MODE_RSS)
		smaps_rss(s.pid, ram_name, &other_kib, &ram_kib);
	else
		sched = schedstat_ns(s.pid);
	reap(&s);

	switch (mode) {
	case MODE_START:
		printf("wall_ms=%.3f cpu_ms=%.3f sched_ms=%.3f byte=0x%02x\n", (t1 - t0) / 1e6,
		       cpu / 1e6, sched / 1e6, (unsigned char)console[0]);
		break;
	case MODE_LINE:
		printf("wall_ms=%.3f cpu_ms=%.3f sched_ms=%.3f %.*s\n", (t1 - t0) / 1e6, cpu / 1e6,
		       sched / 1e6, (int)line_len, console + line_at);
		break;
	case MODE_RSS:
		printf("wall_ms=%.3f rss_kib=%" PRIu64 " ram_kib=%" PRIu64 " %.*s\n",
		       (t1 - t0) / 1e6, other_kib, ram_kib, (int)line_len, console + line_at);
		break;
	}
	return 0;
}

/* ---- the results table ---- */

#define MAX_SAMPLES 256

enum { VMM_BUNSHIN, VMM_QEMU, VMM_COUNT };

struct metric {
	const char *key; /* as in the results file */
	const char *label;
	const char *unit;
	double scale;  /* results-file value * scale = shown value */
	double target; /* bunshin's median must be <= target; 0: none */
	const char *target_text;
	double v[VMM_COUNT][MAX_SAMPLES];
	size_t n[VMM_COUNT];
};

#define METRIC(k, l, u, s, t, tt)                                                                  \
	{                                                                                          \
		.key = k, .label = l, .unit = u, .scale = s, .target = t, .target_text = tt        \
	}

static struct metric metrics[] = {
	METRIC("start_cpu", "VMM start to first guest instruction, CPU", "ms", 1, 2, "≤ 2 ms"),
	METRIC("start_wall", "VMM start to first guest instruction, wall", "ms", 1, 0, NULL),
	METRIC("boot_wall", "Test guest boot to `boot` pass line, wall", "ms", 1, 0, NULL),
	METRIC("boot_cpu", "Test guest boot to `boot` pass line, CPU", "ms", 1, 0, NULL),
	METRIC("rss", "VMM RSS beyond guest RAM (`serial-echo` ready)", "MiB", 1.0 / 1024, 2,
	       "≤ 2 MiB"),
	METRIC("ram_rss", "Guest RAM touched (for reference, not in the row above)", "MiB",
	       1.0 / 1024, 0, NULL),
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void fmt_value(char *buf, size_t size, double x)
{
	if (x >= 100)
		snprintf(buf, size, "%.0f", x);
	else if (x >= 10)
		snprintf(buf, size, "%.1f", x);
	else
		snprintf(buf, size, "%.2f", x);
}

static void fmt_cell(char *buf, size_t size, struct metric *m, int vmm)
{
	char med[32], lo[32], hi[32];
	double *v = m->v[vmm];
	size_t n = m->n[vmm];

	if (!n) {
		snprintf(buf, size, "—");
		return;
	}
	fmt_value(med, sizeof(med), median(v, n) * m->scale);
	fmt_value(lo, sizeof(lo), v[0] * m->scale);
	fmt_value(hi, sizeof(hi), v[n - 1] * m->scale);
	snprintf(buf, size, "**%s** (%s–%s)", med, lo, hi);
}

static const char *target_met(const struct metric *m, double bunshin_median)
{
	if (!m->target_text)
		return "—";
	if (!m->n[VMM_BUNSHIN])
		return "no data";
	return bunshin_median <= m->target ? "yes" : "**no**";
}

static int table(const char *path)
{
	static const char *const vmm_names[VMM_COUNT] = {"bunshin", "qemu"};
	char line[256], key[64], vmm[64];
	FILE *f = fopen(path, "r");
	size_t runs = 0;
	double value;

	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		struct metric *m = NULL;
		int vi = -1;

		if (sscanf(line, "%63s %63s %lf", key, vmm, &value) != 3)
			die("%s: bad line: %s", path, line);
		for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
			if (strcmp(metrics[i].key, key) == 0)
				m = &metrics[i];
		for (int i = 0; i < VMM_COUNT; i++)
			if (strcmp(vmm_names[i], vmm) == 0)
				vi = i;
		if (!m || vi < 0)
			die("%s: unknown metric or VMM: %s", path, line);
		if (m->n[vi] == MAX_SAMPLES)
			die("%s: more than %d samples of %s", path, MAX_SAMPLES, key);
		m->v[vi][m->n[vi]++] = value;
	}
	fclose(f);

	printf("| Metric | bunshin-vmm median (min–max) | QEMU median (min–max) | "
	       "ratio bunshin/QEMU | target (bunshin) | met |\n");
	printf("| --- | --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
		struct metric *m = &metrics[i];
		char cell[VMM_COUNT][128], ratio[32] = "—";
		double med[VMM_COUNT] = {0, 0};

		if (!m->n[VMM_BUNSHIN] && !m->n[VMM_QEMU])
			continue;
		for (int v = 0; v < VMM_COUNT; v++) {
			fmt_cell(cell[v], sizeof(cell[v]), m, v);
			if (m->n[v])
				med[v] = median(m->v[v], m->n[v]) * m->scale;
			if (m->n[v] > runs)
				runs = m->n[v];
		}
		if (m->n[VMM_BUNSHIN] && m->n[VMM_QEMU] && med[VMM_QEMU] > 0)
			snprintf(ratio, sizeof(ratio), "%.3f", med[VMM_BUNSHIN] / med[VMM_QEMU]);
		printf("| %s (%s) | %s | %s | %s | %s | %s |\n", m->label, m->unit,
		       cell[VMM_BUNSHIN], cell[VMM_QEMU], ratio,
		       m->target_text ? m->target_text : "—", target_met(m, med[VMM_BUNSHIN]));
	}
	printf("\nMedians of %zu runs per VMM (the VMMs interleaved run by run).\n", runs);
	return 0;
}

/* ---- command line ---- */

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fputs("usage: bench measure start TIMEOUT_S -- PROGRAM [ARG...]\n"
	      "       bench measure line TIMEOUT_S LINE -- PROGRAM [ARG...]\n"
	      "       bench measure rss TIMEOUT_S LINE RAM_MAPPING -- PROGRAM [ARG...]\n"
	      "       bench table RESULTS\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *want = NULL, *ram_name = NULL;
	enum mode mode;
	double timeout_s;
	int sep, nargs;
	char *end;

	if (argc == 3 && strcmp(argv[1], "table") == 0)
		return table(argv[2]);
	if (argc < 5 || strcmp(argv[1], "measure") != 0)
		usage();
	for (sep = 2; sep < argc && strcmp(argv[sep], "--") != 0; sep++)
		;
	if (sep >= argc - 1)
		usage();
	nargs = sep - 2; /* mode, timeout and the mode's own arguments */
	if (strcmp(argv[2], "start") == 0 && nargs == 2) {
		mode = MODE_START;
	} else if (strcmp(argv[2], "line") == 0 && nargs == 3) {
		mode = MODE_LINE;
		want = argv[4];
	} else if (strcmp(argv[2], "rss") == 0 && nargs == 4) {
		mode = MODE_RSS;
		want = argv[4];
		ram_name = argv[5];
	} else {
		usage();
	}
	timeout_s = strtod(argv[3], &end);
	if (*end || timeout_s <= 0)
		usage();

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	return measure(mode, timeout_s, want, ram_name, argv + sep + 1);
}
