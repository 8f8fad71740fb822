// SPDX-License-Identifier: MIT
/*
 * A restored VM's new identity (identity.h): the recorded command line
 * with the devices this one replaces rewritten in place, so the restored
 * machine has the same devices in the same order (and so the same PCI
 * addresses and state sections), only with new host-side ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"

/* Options whose value may be replaced, and what a restore may carry. */
enum identity_kind { ID_OTHER, ID_NET, ID_VSOCK, ID_VCON, ID_RESTORE };

static const struct {
	const char *name;
	enum identity_kind kind;
} identity_opts[] = {
	{"--net", ID_NET},	   {"--vsock", ID_VSOCK},      {"--console-virtio", ID_VCON},
	{"--restore", ID_RESTORE}, {"--incoming", ID_RESTORE}, /* this process's own, never the
								  recorded VM's */
};

/* Options without a value; --balloon's is optional (a following key=value word). */
static bool identity_no_value(const char *w)
{
	return !strcmp(w, "--rng") || !strcmp(w, "--verbose") || !strcmp(w, "--help") ||
	       !strcmp(w, "--version");
}

/*
 * The option at argv[i]: how many words it spans, its kind and its value
 * (NULL for options without one).
 */
static int identity_word(char *const *argv, int argc, int i, enum identity_kind *kind,
			 const char **val)
{
	const char *w = argv[i], *eq = strchr(w, '=');
	size_t len = eq ? (size_t)(eq - w) : strlen(w);
	int words = 2;

	*kind = ID_OTHER;
	*val = NULL;
	for (size_t k = 0; k < sizeof(identity_opts) / sizeof(identity_opts[0]); k++)
		if (strlen(identity_opts[k].name) == len && !strncmp(w, identity_opts[k].name, len))
			*kind = identity_opts[k].kind;
	if (strncmp(w, "--", 2) || eq || identity_no_value(w))
		words = 1;
	else if (!strcmp(w, "--balloon"))
		words = i + 1 < argc && argv[i + 1][0] != '-' && strchr(argv[i + 1], '=') ? 2 : 1;
	if (words == 2 && i + 1 >= argc)
		words = 1;
	if (eq)
		*val = eq + 1;
	else if (words == 2)
		*val = argv[i + 1];
	return words;
}

/* How many options of kind the command line has, counted the way identity_word() sees them. */
static unsigned int identity_count(char *const *argv, int argc, enum identity_kind want)
{
	unsigned int n = 0;
	enum identity_kind kind;
	const char *val;

	for (int i = 1; i < argc;) {
		i += identity_word(argv, argc, i, &kind, &val);
		n += kind == want;
	}
	return n;
}

/* The recorded NIC an override names: its id=, else "netN" by position. */
static int identity_find_net(const struct vmm_config *rec, const char *id)
{
	char name[16];

	for (unsigned int k = 0; k < rec->nnets; k++)
		if (rec->nets[k].id[0] && !strcmp(rec->nets[k].id, id))
			return (int)k;
	for (unsigned int k = 0; k < rec->nnets; k++) {
		snprintf(name, sizeof(name), "net%u", k);
		if (!strcmp(name, id))
			return (int)k;
	}
	return -1;
}

/* Which override (index into now->nets) replaces each recorded NIC; -1 none. */
static int identity_plan_nets(const struct vmm_config *rec, const struct vmm_config *now,
			      int by_nic[CONFIG_MAX_NETS], struct error *err)
{
	for (unsigned int k = 0; k < CONFIG_MAX_NETS; k++)
		by_nic[k] = -1;
	for (unsigned int j = 0; j < now->nnets; j++) {
		const struct config_net *o = &now->nets[j];
		int k;

		if (!o->id[0])
			return error_set(err, EINVAL,
					 "--net: with --restore, id= names the recorded network "
					 "device to replace (its id=, or netN by position)");
		k = identity_find_net(rec, o->id);
		if (k < 0)
			return error_set(err, ENOENT,
					 "--net: the snapshot has no network device '%s' (it has "
					 "%u; unnamed ones are net0, net1, ...)",
					 o->id, rec->nnets);
		if (by_nic[k] >= 0)
			return error_set(err, EINVAL, "--net: network device '%s' replaced twice",
					 o->id);
		if (o->queues != 1 && o->queues != rec->nets[k].queues)
			return error_set(err, EINVAL,
					 "--net: queues=%u for '%s', the snapshot has %u (a "
					 "restore cannot change it)",
					 o->queues, o->id, rec->nets[k].queues);
		by_nic[k] = (int)j;
	}
	return 0;
}

static int identity_check(const struct vmm_config *rec, const struct vmm_config *now,
			  struct error *err)
{
	if (now->vsock.enabled && !rec->vsock.enabled)
		return error_set(err, ENOENT,
				 "--vsock: the snapshot has no vsock device to replace");
	if (now->console_virtio && !rec->console_virtio)
		return error_set(err, ENOENT,
				 "--console-virtio: the snapshot has no virtio console to replace");
	return 0;
}

/* The value a replaced NIC gets: the recorded id and queues, the new tap and MAC. */
static char *identity_net_value(const struct config_net *rec, const struct config_net *o)
{
	char mac[32] = "", id[CONFIG_ID + 8] = "", *v;

	if (o->has_mac)
		snprintf(mac, sizeof(mac), ",mac=%02x:%02x:%02x:%02x:%02x:%02x", o->mac[0],
			 o->mac[1], o->mac[2], o->mac[3], o->mac[4], o->mac[5]);
	if (rec->id[0])
		snprintf(id, sizeof(id), ",id=%s", rec->id);
	if (asprintf(&v, "tap=%s,queues=%u%s%s", o->tap, rec->queues, id, mac) < 0)
		return NULL;
	return v;
}

struct identity_out {
	char **argv;
	int argc;
	bool failed;
};

static void identity_push(struct identity_out *o, const char *s)
{
	char *copy = s ? strdup(s) : NULL;

	if (!copy) {
		o->failed = true;
		return;
	}
	o->argv[o->argc++] = copy;
}

/* An option as it was written (one word or two), with value replaced. */
static void identity_push_opt(struct identity_out *o, int words, const char *name,
			      const char *value)
{
	char *glued;

	if (words == 2) {
		identity_push(o, name);
		identity_push(o, value);
		return;
	}
	if (asprintf(&glued, "%s=%s", name, value) < 0) {
		o->failed = true;
		return;
	}
	o->argv[o->argc++] = glued;
}

/* The recorded options, with the replaced devices' values swapped for the new ones. */
static void identity_rewrite(struct identity_out *o, const struct snapshot_args *a,
			     const struct vmm_config *rec, const struct vmm_config *now,
			     const int by_nic[CONFIG_MAX_NETS])
{
	unsigned int nic = 0;
	enum identity_kind kind;
	const char *val;
	char buf[CONFIG_UDS_MAX + 32];
	int words;

	identity_push(o, a->argv[0]);
	for (int i = 1; i < a->argc && !o->failed; i += words) {
		words = identity_word(a->argv, a->argc, i, &kind, &val);
		if (kind == ID_NET && by_nic[nic] >= 0) {
			char *v = identity_net_value(&rec->nets[nic], &now->nets[by_nic[nic]]);

			identity_push_opt(o, words, "--net", v);
			o->failed = o->failed || !v;
			free(v);
		} else if (kind == ID_VSOCK && now->vsock.enabled) {
			snprintf(buf, sizeof(buf), "cid=%u,uds=%s", now->vsock.cid, now->vsock.uds);
			identity_push_opt(o, words, "--vsock", buf);
		} else if (kind == ID_VCON && now->console_virtio) {
			identity_push_opt(o, words, "--console-virtio", now->console_virtio);
		} else {
			for (int k = 0; k < words; k++)
				identity_push(o, a->argv[i + k]);
		}
		nic += kind == ID_NET;
	}
}

/* This command line's own options (--serial, --api-sock, ...) after the recorded ones: they win. */
static void identity_append_own(struct identity_out *o, const struct vmm_config *now)
{
	enum identity_kind kind;
	const char *val;
	int words;

	for (int i = 1; i < now->argc && !o->failed; i += words) {
		words = identity_word(now->argv, now->argc, i, &kind, &val);
		if (kind != ID_OTHER)
			continue;
		for (int k = 0; k < words; k++)
			identity_push(o, now->argv[i + k]);
	}
}

/* getopt takes "--ne" for "--net": a word we cannot see is a device we would add twice. */
static int identity_check_spelling(const struct vmm_config *cfg, const char *whose,
				   struct error *err)
{
	if (identity_count(cfg->argv, cfg->argc, ID_NET) != cfg->nnets ||
	    identity_count(cfg->argv, cfg->argc, ID_VSOCK) != (cfg->vsock.enabled ? 1u : 0u) ||
	    identity_count(cfg->argv, cfg->argc, ID_VCON) != (cfg->console_virtio ? 1u : 0u))
		return error_set(err, EINVAL,
				 "%s: write --net, --vsock and --console-virtio out in full "
				 "with --restore",
				 whose);
	return 0;
}

static int identity_plan(const struct snapshot_args *a, const struct vmm_config *now,
			 struct vmm_config *rec, int by_nic[CONFIG_MAX_NETS], struct error *err)
{
	int ret = config_parse(rec, a->argc, a->argv, 0, err);

	if (ret)
		return error_wrap(err, "the snapshot's command line");
	ret = identity_check_spelling(rec, "the snapshot's command line", err);
	if (!ret)
		ret = identity_check_spelling(now, "the command line", err);
	if (!ret)
		ret = identity_check(rec, now, err);
	if (!ret)
		ret = identity_plan_nets(rec, now, by_nic, err);
	return ret;
}

int identity_merge(struct snapshot_args *a, const struct vmm_config *now, struct error *err)
{
	int by_nic[CONFIG_MAX_NETS];
	/*
	 * On the heap, not the stack: a vmm_config is ~200 KiB that parsing
	 * touches whole, and a stack keeps its high-water mark for the life of
	 * the VM (every clone would carry it); freed, the heap gives it back.
	 */
	struct vmm_config *rec = malloc(sizeof(*rec));
	struct identity_out o = {0};
	int ret = rec ? identity_plan(a, now, rec, by_nic, err)
		      : error_set(err, ENOMEM, "out of memory");

	if (!ret) {
		/* A replaced option never takes more words than it had; now's own are appended. */
		o.argv = calloc((size_t)(a->argc + now->argc + 2), sizeof(char *));
		if (!o.argv)
			ret = error_set(err, ENOMEM, "out of memory");
	}
	if (!ret)
		identity_rewrite(&o, a, rec, now, by_nic);
	free(rec);
	if (ret)
		return ret;
	identity_append_own(&o, now);
	if (o.failed) {
		struct snapshot_args tmp = {.argc = o.argc, .argv = o.argv};

		snapshot_args_free(&tmp);
		return error_set(err, ENOMEM, "out of memory");
	}
	snapshot_args_free(a);
	a->argv = o.argv;
	a->argc = o.argc;
	return 0;
}

void identity_mark(struct vmm_config *out, const struct vmm_config *now)
{
	for (unsigned int j = 0; j < now->nnets; j++)
		for (unsigned int k = 0; k < out->nnets; k++)
			if (!strcmp(out->nets[k].tap, now->nets[j].tap))
				out->nets[k].replaced = true;
	out->vsock.replaced = now->vsock.enabled;
}
