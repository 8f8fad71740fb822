/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MIGRATE_H
#define BUNSHIN_VMM_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "snapshot/snapfile.h"
#include "../common/error.h"

/*
 * Live migration (migrate.c) over the stream of snapshot/migstream.h.
 *
 * Source (PUT /vm/migrate): dirty tracking on, round 1 sends every page
 * that is not zero, later rounds the pages written during the one before,
 * until few are left or MIGRATE_MAX_ROUNDS; then the VM pauses, the last
 * dirty pages (the devices' writes included) and the state file follow
 * (disk images' locks are let go just before it, taken back on failure),
 * and the destination answers once its VM runs. Then the source exits 0
 * (a log line says where the VM went). On any failure before that answer
 * (no destination, a dropped connection, the destination's error) the
 * source resumes its VM and the API call fails saying why.
 *
 * Destination (--incoming URL): waits for one source before anything is
 * built, rebuilds the VM from the recorded command line (with its own
 * host-side options on top, as --restore does), fills fresh guest memory
 * from the stream, loads the state and runs.
 */

struct machine;
struct snapshot_args;

struct migrate_stats {
	bool done;
	double total_ms;     /* from the request to the destination's answer */
	double downtime_ms;  /* from the pause to the destination's answer (its VM running) */
	uint64_t bytes;	     /* sent */
	uint64_t pages;	     /* sent, all rounds */
	unsigned int rounds; /* pre-copy rounds, the stop-and-copy one included */
};

/* What GET /vm/metrics shows of this process's outgoing migrations (API thread). */
struct migrate_record {
	unsigned int attempts, failed;
	struct migrate_stats last; /* the latest attempt, failed or not */
};

/*
 * Source: moves the running VM to url; 0 with st filled in, or -errno
 * with err. Each attempt is counted in m's record.
 */
int machine_migrate(struct machine *m, const char *url, struct migrate_stats *st,
		    struct error *err);

/*
 * Destination, before anything is built: waits for the source on
 * now->incoming, reads the header and the command line, and parses the
 * configuration into out (a keeps its strings). *fd is the stream.
 */
int migrate_incoming_config(const struct vmm_config *now, struct vmm_config *out,
			    struct snapshot_args *a, int *fd, struct error *err);
/*
 * Guest memory (fresh, zeroed) from the stream, then the state file into
 * m->snap. Called once the KVM VM and its vCPUs exist, so building them
 * is not part of the downtime.
 */
int migrate_receive(struct machine *m, struct error *err);
/* The answer to the source (ret 0: running), then the stream is closed. */
void migrate_incoming_done(struct machine *m, int ret, const char *msg);

#endif
