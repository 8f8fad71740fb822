// SPDX-License-Identifier: MIT
/* "fwmark MARK lookup TABLE" policy rules (route.h). */
#include <errno.h>
#include <linux/fib_rules.h>
#include <sys/socket.h>

#include <netlink/route/rule.h>

#include "internal.h"
#include "route.h"

static struct rtnl_rule *rule_build(const struct hostnet_rule *r)
{
	struct rtnl_rule *rule = rtnl_rule_alloc();

	if (!rule)
		return NULL;
	rtnl_rule_set_family(rule, AF_INET);
	rtnl_rule_set_prio(rule, r->prio);
	rtnl_rule_set_mark(rule, r->mark);
	rtnl_rule_set_mask(rule, 0xffffffffu);
	rtnl_rule_set_table(rule, r->table);
	rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
	return rule;
}

static int rule_fail(struct error *err, int nlerr, const char *what, const struct hostnet_rule *r)
{
	return error_set(err, hostnet_nl_errno(nlerr),
			 "%s rule 'fwmark %u lookup %u' (priority %u): %s", what, r->mark, r->table,
			 r->prio, nl_geterror(nlerr));
}

int hostnet_rule_add(struct hostnet *hn, const struct hostnet_rule *r, struct error *err)
{
	struct rtnl_rule *rule = rule_build(r);
	int ret;

	if (!rule)
		return error_set(err, ENOMEM, "adding a rule: out of memory");
	/* Without EXCL the kernel adds a duplicate rule rather than saying it is there. */
	ret = rtnl_rule_add(hn->sk, rule, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_rule_put(rule);
	if (ret == -NLE_EXIST)
		return 0;
	return ret < 0 ? rule_fail(err, ret, "adding", r) : 0;
}

int hostnet_rule_del(struct hostnet *hn, const struct hostnet_rule *r, struct error *err)
{
	struct rtnl_rule *rule = rule_build(r);
	int ret;

	if (!rule)
		return error_set(err, ENOMEM, "removing a rule: out of memory");
	ret = rtnl_rule_delete(hn->sk, rule, 0);
	rtnl_rule_put(rule);
	if (ret == -NLE_OBJ_NOTFOUND || ret == -NLE_NOADDR)
		return 0;
	return ret < 0 ? rule_fail(err, ret, "removing", r) : 0;
}

int hostnet_rule_list(struct hostnet *hn, uint32_t prio, hostnet_rule_fn fn, void *opaque,
		      struct error *err)
{
	struct nl_cache *cache;
	struct nl_object *o;
	int ret = rtnl_rule_alloc_cache(hn->sk, AF_INET, &cache);

	if (ret < 0)
		return error_set(err, hostnet_nl_errno(ret), "listing rules: %s", nl_geterror(ret));
	ret = 0;
	for (o = nl_cache_get_first(cache); o && !ret; o = nl_cache_get_next(o)) {
		struct rtnl_rule *rule = (struct rtnl_rule *)o;
		struct hostnet_rule r = {.prio = rtnl_rule_get_prio(rule),
					 .mark = rtnl_rule_get_mark(rule),
					 .table = rtnl_rule_get_table(rule)};

		if (r.prio == prio)
			ret = fn(&r, opaque);
	}
	nl_cache_free(cache);
	return ret;
}
