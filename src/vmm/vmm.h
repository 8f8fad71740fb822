/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VMM_H
#define BUNSHIN_VMM_VMM_H

#include "config.h"

/* Runs the VM described by cfg until it powers off, reboots or fails; returns an exit status. */
int vmm_run(const struct vmm_config *cfg);

#endif
