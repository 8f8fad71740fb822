// SPDX-License-Identifier: MIT
/*
 * daemonbench: load on a running bunshind, for bench/daemon.sh.
 *
 *   daemonbench ENDPOINT TOKEN CLIENTS SECONDS CREATES BOOTS
 *
 * 1. reads: CLIENTS threads GET /v1/instances for SECONDS; requests per
 *    second and latency percentiles;
 * 2. creates: CREATES instances created stopped by CLIENTS threads at once
 *    (the quota transaction under contention); creates per second;
 * 3. boots: BOOTS instances (tiny, test-guest) one after the other, each
 *    from the POST to the state "running" (its VMM answering); then every
 *    instance is deleted.
 *
 * Prints "key value" lines; the tenant must have room (the script raises
 * the admin tenant's quota first).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/common/httpc.h"

#define DB_MAX_SAMPLES (1 << 20)

static const char *endpoint, *token;

static double db_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request; its HTTP status, or -1 with no answer. */
static int db_req(const char *method, const char *path, const char *body, char **out)
{
	struct httpc_request req = {.method = method, .path = path, .token = token, .body = body};
	struct httpc_response resp;
	struct error err = {0};
	int st;

	if (httpc_do(endpoint, &req, &resp, &err)) {
		fprintf(stderr, "daemonbench: %s\n", err.msg);
		return -1;
	}
	st = resp.status;
	if (out)
		*out = resp.body;
	else
		httpc_response_free(&resp);
	return st;
}

struct db_reader {
	double until;
	double *lat;
	size_t n, max;
	int errors;
};

static void *db_read_loop(void *arg)
{
	struct db_reader *r = arg;

	while (db_now() < r->until && r->n < r->max) {
		double t0 = db_now();

		if (db_req("GET", "/v1/instances", NULL, NULL) != 200)
			r->errors++;
		r->lat[r->n++] = db_now() - t0;
	}
	return NULL;
}

static int db_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void db_reads(int clients, int seconds)
{
	struct db_reader *r = calloc((size_t)clients, sizeof(*r));
	pthread_t *t = calloc((size_t)clients, sizeof(*t));
	double *all = malloc(DB_MAX_SAMPLES * sizeof(*all));
	double t0 = db_now(), wall;
	size_t n = 0;
	int errors = 0;

	if (!r || !t || !all)
		exit(1);
	for (int i = 0; i < clients; i++) {
		r[i].until = t0 + seconds;
		r[i].max = DB_MAX_SAMPLES / (size_t)clients;
		r[i].lat = all + (size_t)i * r[i].max;
		pthread_create(&t[i], NULL, db_read_loop, &r[i]);
	}
	for (int i = 0; i < clients; i++)
		pthread_join(t[i], NULL);
	wall = db_now() - t0;
	/* Gather the per-thread runs into one sorted array. */
	for (int i = 0; i < clients; i++) {
		memmove(all + n, r[i].lat, r[i].n * sizeof(*all));
		n += r[i].n;
		errors += r[i].errors;
	}
	qsort(all, n, sizeof(*all), db_cmp);
	printf("read_requests %zu\nread_errors %d\nread_per_s %.0f\n", n, errors, (double)n / wall);
	if (n)
		printf("read_p50_ms %.3f\nread_p99_ms %.3f\nread_max_ms %.3f\n", all[n / 2] * 1e3,
		       all[(size_t)((double)n * 0.99)] * 1e3, all[n - 1] * 1e3);
	free(all);
	free(r);
	free(t);
}

struct db_creator {
	int first, count, ok;
};

static void *db_create_loop(void *arg)
{
	struct db_creator *c = arg;

	for (int i = c->first; i < c->first + c->count; i++) {
		char body[160];

		snprintf(body, sizeof(body),
			 "{\"name\":\"bench%d\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			 "\"start\":false}",
			 i);
		c->ok += db_req("POST", "/v1/instances", body, NULL) == 201;
	}
	return NULL;
}

static void db_creates(int clients, int creates)
{
	struct db_creator *c = calloc((size_t)clients, sizeof(*c));
	pthread_t *t = calloc((size_t)clients, sizeof(*t));
	double t0 = db_now(), wall;
	int ok = 0;

	if (!c || !t)
		exit(1);
	for (int i = 0; i < clients; i++) {
		c[i].first = i * (creates / clients);
		c[i].count = i == clients - 1 ? creates - c[i].first : creates / clients;
		pthread_create(&t[i], NULL, db_create_loop, &c[i]);
	}
	for (int i = 0; i < clients; i++) {
		pthread_join(t[i], NULL);
		ok += c[i].ok;
	}
	wall = db_now() - t0;
	printf("creates %d\ncreates_ok %d\ncreates_per_s %.1f\n", creates, ok, ok / wall);
	free(c);
	free(t);
}

/* Seconds from the POST to "running"; negative when it did not get there in 60 s. */
static double db_boot_one(int i)
{
	char body[160], path[64], *out = NULL;
	double t0 = db_now();

	snprintf(body, sizeof(body),
		 "{\"name\":\"boot%d\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}", i);
	if (db_req("POST", "/v1/instances", body, NULL) != 201)
		return -1;
	snprintf(path, sizeof(path), "/v1/instances/boot%d", i);
	while (db_now() - t0 < 60) {
		bool running;

		if (db_req("GET", path, NULL, &out) != 200) {
			free(out);
			return -1;
		}
		running = strstr(out, "\"state\":\"running\"") != NULL;
		free(out);
		out = NULL;
		if (running)
			return db_now() - t0;
		usleep(2000);
	}
	return -1;
}

static void db_boots(int boots)
{
	double *s = calloc((size_t)boots + 1, sizeof(*s));
	int ok = 0;

	for (int i = 0; i < boots; i++) {
		double v = db_boot_one(i);

		if (v >= 0)
			s[ok++] = v;
	}
	qsort(s, (size_t)ok, sizeof(*s), db_cmp);
	printf("boots %d\nboots_ok %d\n", boots, ok);
	if (ok)
		printf("boot_median_ms %.1f\nboot_min_ms %.1f\nboot_max_ms %.1f\n", s[ok / 2] * 1e3,
		       s[0] * 1e3, s[ok - 1] * 1e3);
	free(s);
}

static void db_delete_all(void)
{
	char *out = NULL, *p;
	int n = 0;

	if (db_req("GET", "/v1/instances", NULL, &out) != 200) {
		free(out);
		return;
	}
	/* Each object starts with its id: {"id":N,... */
	for (p = out; (p = strstr(p, "{\"id\":")); p++) {
		char path[64];

		snprintf(path, sizeof(path), "/v1/instances/%ld", strtol(p + 6, NULL, 10));
		n += db_req("DELETE", path, NULL, NULL) == 204;
	}
	free(out);
	printf("deleted %d\n", n);
}

int main(int argc, char **argv)
{
	int clients, seconds, creates, boots;

	if (argc != 7) {
		fprintf(stderr,
			"usage: daemonbench ENDPOINT TOKEN CLIENTS SECONDS CREATES BOOTS\n");
		return 2;
	}
	endpoint = argv[1];
	token = argv[2];
	clients = atoi(argv[3]);
	seconds = atoi(argv[4]);
	creates = atoi(argv[5]);
	boots = atoi(argv[6]);
	if (clients < 1 || clients > 1024 || seconds < 1 || creates < 0 || boots < 0) {
		fprintf(stderr, "daemonbench: CLIENTS 1-1024, SECONDS >= 1, CREATES, BOOTS >= 0\n");
		return 2;
	}
	db_creates(clients, creates);
	db_reads(clients, seconds);
	db_boots(boots);
	db_delete_all();
	return 0;
}
