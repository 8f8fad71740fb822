/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_CONFIG_H
#define BUNSHIN_VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/error.h"
#include "sandbox/seccomp.h"

enum on_reboot {
	ON_REBOOT_EXIT,	   /* the VMM exits with VMM_EXIT_REBOOT */
	ON_REBOOT_RESTART, /* the VM is rebuilt and boots again */
};

/* Exit statuses of bunshin-vmm; documented in the README. */
enum vmm_exit_status {
	VMM_EXIT_POWEROFF = 0, /* the guest powered off */
	VMM_EXIT_ERROR = 1,    /* the VM could not be started or crashed */
	VMM_EXIT_USAGE = 2,    /* bad command line */
	VMM_EXIT_REBOOT = 3,   /* the guest rebooted and --on-reboot=exit */
	VMM_EXIT_SIGNAL = 4,   /* stopped by SIGINT/SIGTERM or the API's stop action */
};

#define CONFIG_MAX_CPUS	  1024
#define CONFIG_MIN_MEMORY (4ULL << 20)
#define CONFIG_MAX_DISKS  16
#define CONFIG_PATH_MAX	  4096
#define CONFIG_DISK_ID	  20		      /* virtio-blk's serial field */
#define CONFIG_MAX_QUEUES 16		      /* per disk, or queue pairs per network device */
#define CONFIG_RATE_MAX	  1000000000000000ULL /* --disk iops=, bps= and bursts: 10^15 */
#define CONFIG_MAX_NETS	  8
#define CONFIG_IFNAME	  16  /* IFNAMSIZ, terminator included */
#define CONFIG_ID	  32  /* --net id= */
#define CONFIG_UDS_MAX	  108 /* sun_path, terminator included */
/* --vsock uds=: guest connections to port P go to "<uds>_P", so leave room for "_4294967295". */
#define CONFIG_VSOCK_UDS_MAX (CONFIG_UDS_MAX - 11)

/*
 * One --disk path=IMG[,readonly=on][,id=NAME][,direct=on][,queues=N]
 * [,iops=N][,bps=N][,iops_burst=N][,bps_burst=N].
 */
struct config_disk {
	char path[CONFIG_PATH_MAX];
	char id[CONFIG_DISK_ID + 1]; /* empty: the block layer's default (the file name) */
	bool read_only;
	bool direct;
	unsigned int queues; /* 1..CONFIG_MAX_QUEUES */
	/* Rate limits, per second; 0: unlimited. Bursts: 0 is one second's worth. */
	uint64_t iops, iops_burst, bps, bps_burst;
	/* overlay=FILE: the guest writes there, path= is only read (block/overlay.h) */
	char overlay[CONFIG_PATH_MAX];
	/* --restore: the snapshot's frozen top layer, opened instead of path= */
	char frozen[CONFIG_PATH_MAX];
	bool frozen_is_overlay;
};

/* One --overlay DISK=FILE: DISK an id, path or index of a --disk. */
struct config_overlay {
	const char *disk; /* not terminated: disk_len bytes */
	size_t disk_len;
	const char *file;
};

/* One --net tap=NAME[,mac=MAC][,queues=N][,id=NAME]. */
struct config_net {
	char tap[CONFIG_IFNAME];
	char id[CONFIG_ID]; /* empty: none given */
	uint8_t mac[6];
	bool has_mac;	     /* false: the device picks a locally administered one */
	unsigned int queues; /* queue pairs, 1..CONFIG_MAX_QUEUES */
	bool replaced;	     /* --restore: a new identity replaced the recorded one */
};

/* --vsock cid=N,uds=PATH */
struct config_vsock {
	bool enabled;
	uint32_t cid; /* 3..0xfffffffe: 0-2 are reserved, -1 means "any" */
	char uds[CONFIG_VSOCK_UDS_MAX];
	bool replaced; /* --restore: a new CID and socket replaced the recorded ones */
};

/* --balloon [size=SIZE][,stats=SECONDS][,free_page_reporting=on|off][,deflate_on_oom=on|off] */
struct config_balloon {
	bool enabled;
	uint64_t size;		   /* initial target: bytes the guest should give back */
	unsigned int stats_period; /* seconds between statistics requests, 0: none */
	bool free_page_reporting;
	bool deflate_on_oom;
};

struct vmm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned int cpus;
	uint64_t memory;
	const char *serial;
	enum on_reboot on_reboot;
	const char *kvm_device;
	bool rng; /* a virtio-rng device */
	struct config_disk disks[CONFIG_MAX_DISKS];
	unsigned int ndisks;
	struct config_net nets[CONFIG_MAX_NETS];
	unsigned int nnets;
	const char *console_virtio; /* chardev spec of the virtio console, NULL: none */
	struct config_vsock vsock;
	struct config_balloon balloon;
	const char *api_sock; /* control API socket, NULL: no API */
	const char *restore;  /* snapshot directory to resume from, NULL: boot */
	uint64_t host_ram;    /* what config_parse() checked --memory against, 0: nothing */
	/* The command line parsed (a snapshot records it to rebuild the same VM). */
	int argc;
	char **argv;
	int verbose;
	bool help;
	bool version;
	/* --seccomp: what a system call outside the sandbox's allow-list does (kill by default). */
	enum sandbox_seccomp seccomp;
	/* --overlay, in order given (a later one for the same disk wins) */
	struct config_overlay overlays[CONFIG_MAX_DISKS];
	unsigned int noverlays;
	/* --incoming: wait for a live migration on this unix:/tcp: URL instead of booting. */
	const char *incoming;
};

/*
 * Parses argv into cfg. Returns 0, or a negative errno with one line in err
 * naming the option and the problem. host_ram is the host's physical
 * memory in bytes (0 to skip that check); a VM larger than the host is
 * refused here, before anything is allocated.
 */
int config_parse(struct vmm_config *cfg, int argc, char **argv, uint64_t host_ram,
		 struct error *err);

void config_usage(const char *prog);

/*
 * The --disk that name means, as the control API names disks: its id=,
 * else its path=, else its index. -1 when none.
 */
int config_find_disk(const struct vmm_config *cfg, const char *name, size_t len);

#endif
