/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_KVM_IOEVENT_H
#define BUNSHIN_VMM_KVM_IOEVENT_H

#include "../devices/ioevent.h"

/*
 * The ioevent_sink of the VMM: KVM_IOEVENTFD on MMIO addresses, datamatch
 * off. Registrations are kept here, because the KVM VM is rebuilt on every
 * guest reboot while devices live on: vm_ioevent_attach() binds all of them
 * to a new VM, vm_ioevent_detach() forgets the old one (closing a VM drops
 * its ioeventfds). Devices never see the VM file descriptor.
 */
struct vm_ioevent;

struct vm_ioevent *vm_ioevent_create(void);
void vm_ioevent_destroy(struct vm_ioevent *v);
/* Registers every assigned range on the VM; failures are logged (the bus path remains). */
void vm_ioevent_attach(struct vm_ioevent *v, int vm_fd);
void vm_ioevent_detach(struct vm_ioevent *v);
struct ioevent_sink vm_ioevent_sink(struct vm_ioevent *v);

#endif
