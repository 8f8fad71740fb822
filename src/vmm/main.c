// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "vmm.h"
#include "../common/log.h"

static uint64_t host_ram_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long size = sysconf(_SC_PAGE_SIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * size : 0;
}

int main(int argc, char **argv)
{
	struct vmm_config cfg;
	struct error err = {0};

	log_init("bunshin-vmm", LOG_WARN);
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
	return vmm_run(&cfg);
}
