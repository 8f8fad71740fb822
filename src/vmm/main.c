// SPDX-License-Identifier: MIT
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "vmm.h"
#include "sandbox/jail.h"
#include "../common/log.h"

static uint64_t host_ram_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long size = sysconf(_SC_PAGE_SIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * size : 0;
}

/*
 * --jail: returns -1 in the jailed VMM (carry on), else the status to exit
 * with (the launcher's, once the VMM is gone, or an error's).
 */
static int main_jail(const struct jail_config *j, const struct vmm_config *cfg)
{
	/* a VM from a snapshot or the API has its size and devices decided later */
	bool later = cfg->restore || !cfg->kernel;
	const struct jail_vm vm = {.cpus = cfg->cpus,
				   .memory = later ? 0 : cfg->memory,
				   .tun = later || cfg->nnets > 0};
	struct error err = {0};
	int status, ret = jail_enter(j, &vm, &status, &err);

	if (ret == 1)
		return status;
	if (!ret)
		ret = jail_check_config(cfg, &err);
	if (ret < 0) {
		log_error("%s", err.msg);
		return VMM_EXIT_ERROR;
	}
#ifdef BUNSHIN_TEST_HOOKS
	jail_selftest();
#endif
	return -1;
}

int main(int argc, char **argv)
{
	struct jail_config jail;
	struct vmm_config cfg;
	struct error err = {0};
	int n;

	log_init("bunshin-vmm", LOG_WARN);
	/* the jail's options come first; the VMM's parser sees the rest */
	n = jail_parse_args(&jail, argc, argv, &err);
	if (n < 0) {
		log_error("%s", err.msg);
		return VMM_EXIT_USAGE;
	}
	argv[n] = argv[0];
	argc -= n;
	argv += n;
	if (config_parse(&cfg, argc, argv, host_ram_bytes(), &err) < 0) {
		log_error("%s", err.msg);
		return VMM_EXIT_USAGE;
	}
	if (cfg.help) {
		config_usage(argv[0]);
		return 0;
	}
	if (cfg.version) {
		printf("bunshin-vmm %s\n", BUNSHIN_VERSION);
		return 0;
	}
	log_set_level(cfg.verbose >= 2 ? LOG_DEBUG : cfg.verbose ? LOG_INFO : LOG_WARN);
	if (jail.enabled) {
		n = main_jail(&jail, &cfg);
		if (n >= 0)
			return n;
	}
	return vmm_run(&cfg);
}
