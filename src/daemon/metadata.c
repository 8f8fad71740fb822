// SPDX-License-Identifier: MIT
/*
 * The metadata service: 169.254.169.254:80 on every network's bridge, in
 * the OpenStack and EC2 layouts (docs/daemon-api.yaml, "Metadata"). The
 * caller is the instance whose port holds the connection's source address
 * on the network the connection came in by; it sees only its own data.
 *
 * Every bridge carries 169.254.169.254/32 under the label bn-ID:md (so the
 * bridge's upkeep and dnsmasq's --interface leave it alone), and one
 * listening socket per bridge is bound to it with SO_BINDTODEVICE: tenants'
 * subnets may overlap, so (bridge, source IP) is what names a caller, and
 * a reply must leave by the bridge the request came in by.
 *
 * A small epoll server on one thread, not libmicrohttpd: httpd.c can
 * neither bind to a device nor tell a handler the peer's address, and a
 * server (a thread) per network would cost more than every request here
 * (a few hundred bytes, one store read). One request per connection, a
 * request of at most MDD_REQ_MAX bytes with no body, and a deadline per
 * connection, so a slow or hostile client holds one slot for a few
 * seconds at most and never the thread.
 *
 * The thread follows the store and the bridges (network.c makes a bridge
 * when its network is made, so the service is up before the first
 * instance): a listener for every bridge there, none for a network gone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/b64.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../hostnet/ipam.h"
#include "../hostnet/link.h"
#include "meta.h"
#include "supervisor.h"

#define MDD_PORT       80
#define MDD_REQ_MAX    8192 /* request line and headers */
#define MDD_CONN_MAX   256
#define MDD_TIMEOUT_MS 5000
#define MDD_PERIOD_MS  2000
#define MDD_TOKENS     1024
#define MDD_TTL_MAX    21600 /* EC2's: six hours */
#define MDD_TOKEN_HEX  64
#define MDD_DOMAIN     "bunshin.internal"
#define MDD_OS_VERSION "2018-08-27"
#define MDD_LABEL_SFX  ":md"

enum mdd_kind { MDD_KICK, MDD_LISTEN, MDD_CONN };

struct mdd_net {
	enum mdd_kind kind; /* first: what an epoll event points at */
	int64_t id;
	char bridge[IF_NAMESIZE];
	unsigned int ifindex;
	int fd;
	bool seen;
	struct mdd_net *next;
};

struct mdd_conn {
	enum mdd_kind kind;
	int fd; /* -1: a free slot */
	int64_t net;
	char peer[INET_ADDRSTRLEN];
	char in[MDD_REQ_MAX + 1];
	size_t len;
	char *out;
	size_t outlen, outoff;
	bool draining; /* answered: what the client still sends is read and dropped */
	uint64_t deadline;
};

struct mdd_token {
	char value[MDD_TOKEN_HEX + 1];
	int64_t net, instance;
	uint64_t expires; /* ms, CLOCK_MONOTONIC; 0: a free slot */
};

static struct {
	struct daemon *d;
	int ep, kickfd;
	enum mdd_kind kick_kind;
	bool running;
	struct mdd_net *nets;
	struct mdd_conn conns[MDD_CONN_MAX];
	struct mdd_token tokens[MDD_TOKENS];
} mdd = {.ep = -1, .kickfd = -1, .kick_kind = MDD_KICK};

static uint64_t mdd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *mdd_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t mdd_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static uint32_t mdd_addr(void)
{
	return ntohl(inet_addr(META_ADDR));
}

/* ---- the listeners ---- */

static void mdd_label(const struct mdd_net *e, char out[IF_NAMESIZE])
{
	/* "bn-" and up to 9 digits, then ":md": within IFNAMSIZ for any id bunshin makes */
	snprintf(out, IF_NAMESIZE, "%.*s" MDD_LABEL_SFX,
		 (int)(IF_NAMESIZE - 1 - strlen(MDD_LABEL_SFX)), e->bridge);
}

static void mdd_close_listener(struct mdd_net *e)
{
	if (e->fd < 0)
		return;
	epoll_ctl(mdd.ep, EPOLL_CTL_DEL, e->fd, NULL);
	close(e->fd);
	e->fd = -1;
}

static int mdd_listen_socket(const char *bridge, struct error *err)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(MDD_PORT)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return error_set(err, errno, "metadata: socket: %s", strerror(errno));
	sa.sin_addr.s_addr = htonl(mdd_addr());
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, bridge, (socklen_t)strlen(bridge)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64)) {
		int e = errno;

		close(fd);
		return error_set(err, e, "metadata: listening on %s:%d on %s: %s", META_ADDR,
				 MDD_PORT, bridge, strerror(e));
	}
	return fd;
}

/* The address on the bridge and a socket bound to both; again when the bridge was remade. */
static void mdd_open_listener(struct hostnet *hn, struct mdd_net *e, unsigned int ifindex)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct error err = {0};
	char label[IF_NAMESIZE];
	int fd;

	if (e->fd >= 0 && e->ifindex == ifindex)
		return;
	mdd_close_listener(e);
	mdd_label(e, label);
	if (hostnet_addr_add(hn, e->bridge, mdd_addr(), 32, label, &err)) {
		log_warn("network %lld: %s", (long long)e->id, err.msg);
		return;
	}
	fd = mdd_listen_socket(e->bridge, &err);
	if (fd < 0) {
		log_warn("network %lld: %s", (long long)e->id, err.msg);
		return;
	}
	ev.data.ptr = e;
	if (epoll_ctl(mdd.ep, EPOLL_CTL_ADD, fd, &ev)) {
		log_warn("network %lld: metadata: epoll: %s", (long long)e->id, strerror(errno));
		close(fd);
		return;
	}
	e->fd = fd;
	e->ifindex = ifindex;
	log_info("network %lld: metadata service on %s:%d on %s", (long long)e->id, META_ADDR,
		 MDD_PORT, e->bridge);
}

static void mdd_conn_close(struct mdd_conn *c);

/* A network the store no longer has: its listener, its callers, its address if still there. */
static void mdd_drop(struct hostnet *hn, struct mdd_net **link)
{
	struct mdd_net *e = *link;
	struct error err = {0};

	mdd_close_listener(e);
	for (int i = 0; i < MDD_CONN_MAX; i++) {
		if (mdd.conns[i].fd >= 0 && mdd.conns[i].net == e->id)
			mdd_conn_close(&mdd.conns[i]);
	}
	if (hostnet_addr_del(hn, e->bridge, mdd_addr(), 32, &err))
		log_warn("network %lld: %s", (long long)e->id, err.msg);
	log_info("network %lld: metadata service stopped", (long long)e->id);
	*link = e->next;
	free(e);
}

static struct mdd_net *mdd_find(int64_t id, const char *bridge)
{
	struct mdd_net *e;

	for (e = mdd.nets; e; e = e->next) {
		if (e->id == id)
			return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->kind = MDD_LISTEN;
	e->id = id;
	e->fd = -1;
	snprintf(e->bridge, sizeof(e->bridge), "%s", bridge);
	e->next = mdd.nets;
	mdd.nets = e;
	return e;
}

static void mdd_sync_net(struct hostnet *hn, const json_t *n)
{
	const char *bridge = mdd_s(n, "bridge");
	struct mdd_net *e;
	unsigned int ifindex;

	if (!bridge)
		return;
	e = mdd_find(mdd_i(n, "id"), bridge);
	if (!e)
		return;
	e->seen = true;
	/* network.c makes the bridge (at the network's creation) and removes it */
	ifindex = if_nametoindex(bridge);
	if (ifindex)
		mdd_open_listener(hn, e, ifindex);
}

static void mdd_sync(void)
{
	struct store *s = pool_get(mdd.d->pool);
	struct hostnet *hn = NULL;
	struct error err = {0};
	json_t *nets = NULL;
	const json_t *n;
	size_t i;
	int ret = STORE(s, network_list, 0, &nets, &err);

	pool_put(mdd.d->pool, s);
	ret = ret ?: hostnet_open(&hn, &err);
	if (ret) {
		log_warn("metadata: %s", err.msg);
		goto out;
	}
	for (struct mdd_net *e = mdd.nets; e; e = e->next)
		e->seen = false;
	json_array_foreach(nets, i, n) mdd_sync_net(hn, n);
	for (struct mdd_net **l = &mdd.nets; *l;) {
		if ((*l)->seen)
			l = &(*l)->next;
		else
			mdd_drop(hn, l);
	}
out:
	if (hn)
		hostnet_close(hn);
	json_decref(nets);
}

/* ---- IMDSv2 tokens ---- */

static int mdd_token_new(int64_t net, int64_t instance, unsigned int ttl, char *out)
{
	uint8_t raw[MDD_TOKEN_HEX / 2];
	uint64_t now = mdd_now_ms();
	struct mdd_token *t = &mdd.tokens[0];

	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return -EIO;
	/* a free or expired slot, else the one that expires first */
	for (int i = 0; i < MDD_TOKENS; i++) {
		if (mdd.tokens[i].expires <= now) {
			t = &mdd.tokens[i];
			break;
		}
		if (mdd.tokens[i].expires < t->expires)
			t = &mdd.tokens[i];
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		sprintf(t->value + 2 * i, "%02x", raw[i]);
	t->net = net;
	t->instance = instance;
	t->expires = now + (uint64_t)ttl * 1000;
	memcpy(out, t->value, sizeof(t->value));
	return 0;
}

static bool mdd_token_ok(const char *value, int64_t net, int64_t instance)
{
	uint64_t now = mdd_now_ms();

	if (strlen(value) != MDD_TOKEN_HEX)
		return false;
	for (int i = 0; i < MDD_TOKENS; i++) {
		const struct mdd_token *t = &mdd.tokens[i];

		if (t->expires > now && !strcmp(t->value, value))
			return t->net == net && t->instance == instance;
	}
	return false;
}

/* ---- answers ---- */

struct mdd_req {
	const struct mdd_conn *conn;
	char method[8];
	char path[512];
	const char *headers; /* the header lines, "\r\n"-separated */
	json_t *inst;	     /* the caller, once looked up */
};

struct mdd_resp {
	int status;
	const char *ctype;
	char *body; /* malloc'd */
	size_t len;
	char extra[128]; /* more header lines, each ending "\r\n" */
};

static void mdd_text(struct mdd_resp *r, int status, const char *text)
{
	r->status = status;
	r->ctype = "text/plain";
	r->body = strdup(text);
	r->len = r->body ? strlen(r->body) : 0;
}

static void mdd_json(struct mdd_resp *r, json_t *o)
{
	r->status = 200;
	r->ctype = "application/json";
	r->body = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	r->len = r->body ? strlen(r->body) : 0;
	json_decref(o);
	if (!r->body)
		mdd_text(r, 500, "Internal Server Error\n");
}

/*
 * A header's value (case-insensitive name) into out: 1, or 0 when absent,
 * -1 when there but too long (still "sent", for the checks that refuse it).
 */
static int mdd_header(const struct mdd_req *q, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);

	for (const char *l = q->headers; *l && strncmp(l, "\r\n", 2);) {
		size_t len = strcspn(l, "\r\n");
		const char *v = l + nlen + 1, *next = l + len;

		/* "\r\n", or a bare "\r" or "\n": never past the head's NUL */
		next += *next == '\r';
		next += *next == '\n';

		if (len <= nlen || l[nlen] != ':' || strncasecmp(l, name, nlen)) {
			l = next;
			continue;
		}
		while (*v == ' ' || *v == '\t')
			v++;
		len -= (size_t)(v - l);
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (len >= size)
			return -1;
		memcpy(out, v, len);
		out[len] = 0;
		return 1;
	}
	return 0;
}

/* The user data decoded; 404 when there is none. */
static void mdd_user_data(struct mdd_req *q, struct mdd_resp *r)
{
	const char *b64 = mdd_s(q->inst, "user_data");
	size_t len = b64 ? strlen(b64) : 0;
	ssize_t n;

	if (!b64)
		return mdd_text(r, 404, "Not Found\n");
	r->body = malloc(len / 4 * 3 + 3);
	n = r->body ? b64_decode(b64, len, (uint8_t *)r->body, len / 4 * 3 + 3) : -1;
	if (n < 0) {
		free(r->body);
		r->body = NULL;
		return mdd_text(r, 500, "Internal Server Error\n");
	}
	r->status = 200;
	r->ctype = "application/octet-stream";
	r->len = (size_t)n;
}

static void mdd_os_meta(struct mdd_req *q, struct mdd_resp *r)
{
	const char *key = mdd_s(q->inst, "key_name");
	json_t *o = json_object(), *keys = json_object(), *list = json_array();
	char host[STORE_NAME_MAX + sizeof(MDD_DOMAIN) + 2];
	char project[24];

	snprintf(host, sizeof(host), "%s." MDD_DOMAIN, mdd_s(q->inst, "name"));
	if (key) {
		json_object_set_new(keys, key, json_string(mdd_s(q->inst, "public_key")));
		json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name", key, "type", "ssh",
						      "data", mdd_s(q->inst, "public_key")));
	}
	json_object_set_new(o, "uuid", json_string(mdd_s(q->inst, "uuid")));
	json_object_set_new(o, "name", json_string(mdd_s(q->inst, "name")));
	json_object_set_new(o, "hostname", json_string(host));
	snprintf(project, sizeof(project), "%lld", (long long)mdd_i(q->inst, "tenant_id"));
	json_object_set_new(o, "project_id", json_string(project)); /* a string, as OpenStack's */
	json_object_set_new(o, "launch_index", json_integer(0));
	json_object_set_new(o, "availability_zone", json_string("nova"));
	json_object_set_new(o, "public_keys", keys);
	json_object_set_new(o, "keys", list);
	json_object_set_new(o, "meta", json_object());
	mdd_json(r, o);
}

static void mdd_os_network(struct mdd_req *q, struct mdd_resp *r)
{
	char gw[IPAM_ADDR_STRLEN] = "";
	struct error err = {0};
	struct ipam_net in;

	if (!ipam_parse_cidr(mdd_s(q->inst, "network_cidr"), &in, &err))
		ipam_format_addr(in.gateway, gw);
	mdd_json(r,
		 json_pack("{s:[{s:s, s:s, s:s, s:i}], s:[{s:s, s:s, s:s}], s:[{s:s, s:s}]}",
			   "links", "id", "tap0", "type", "phy", "ethernet_mac_address",
			   mdd_s(q->inst, "mac"), "mtu", 1500, "networks", "id", "network0", "type",
			   "ipv4_dhcp", "link", "tap0", "services", "type", "dns", "address", gw));
}

/* /openstack/VERSION/FILE, the version already checked. */
static void mdd_openstack(struct mdd_req *q, const char *file, struct mdd_resp *r)
{
	if (!*file)
		return mdd_text(
			r, 200,
			mdd_s(q->inst, "user_data")
				? "meta_data.json\nnetwork_data.json\nuser_data\nvendor_data.json"
				: "meta_data.json\nnetwork_data.json\nvendor_data.json");
	if (!strcmp(file, "meta_data.json"))
		return mdd_os_meta(q, r);
	if (!strcmp(file, "user_data"))
		return mdd_user_data(q, r);
	if (!strcmp(file, "network_data.json"))
		return mdd_os_network(q, r);
	if (!strcmp(file, "vendor_data.json") || !strcmp(file, "vendor_data2.json"))
		return mdd_json(r, json_object());
	mdd_text(r, 404, "Not Found\n");
}

/* One EC2 meta-data item (path after "meta-data/"), as text. */
static void mdd_ec2_item(struct mdd_req *q, const char *item, struct mdd_resp *r)
{
	const char *key = mdd_s(q->inst, "key_name");
	char buf[STORE_NAME_MAX * 2 + 64];

	if (!*item)
		return mdd_text(
			r, 200,
			key ? "ami-id\nhostname\ninstance-id\ninstance-type\nlocal-hostname\n"
			      "local-ipv4\nmac\nplacement/\npublic-keys/"
			    : "ami-id\nhostname\ninstance-id\ninstance-type\nlocal-hostname\n"
			      "local-ipv4\nmac\nplacement/");
	if (!strcmp(item, "ami-id"))
		snprintf(buf, sizeof(buf), "ami-%08llx", (long long)mdd_i(q->inst, "image_id"));
	else if (!strcmp(item, "instance-id"))
		snprintf(buf, sizeof(buf), "i-%08llx", (long long)mdd_i(q->inst, "id"));
	else if (!strcmp(item, "hostname") || !strcmp(item, "local-hostname"))
		snprintf(buf, sizeof(buf), "%s." MDD_DOMAIN, mdd_s(q->inst, "name"));
	else if (!strcmp(item, "local-ipv4"))
		snprintf(buf, sizeof(buf), "%s", mdd_s(q->inst, "ip"));
	else if (!strcmp(item, "mac"))
		snprintf(buf, sizeof(buf), "%s", mdd_s(q->inst, "mac"));
	else if (!strcmp(item, "instance-type"))
		snprintf(buf, sizeof(buf), "%s", mdd_s(q->inst, "flavor"));
	else if (!strcmp(item, "placement") || !strcmp(item, "placement/"))
		snprintf(buf, sizeof(buf), "availability-zone");
	else if (!strcmp(item, "placement/availability-zone"))
		snprintf(buf, sizeof(buf), "nova");
	else if (key && (!strcmp(item, "public-keys") || !strcmp(item, "public-keys/")))
		snprintf(buf, sizeof(buf), "0=%s", key);
	else if (key && (!strcmp(item, "public-keys/0") || !strcmp(item, "public-keys/0/")))
		snprintf(buf, sizeof(buf), "openssh-key");
	else if (key && !strcmp(item, "public-keys/0/openssh-key"))
		return mdd_text(r, 200, mdd_s(q->inst, "public_key"));
	else
		return mdd_text(r, 404, "Not Found\n");
	mdd_text(r, 200, buf);
}

/* IMDSv2: PUT /latest/api/token. */
static void mdd_token_put(struct mdd_req *q, struct mdd_resp *r)
{
	char v[32], token[MDD_TOKEN_HEX + 1];
	uint64_t ttl;

	/* as EC2: a request relayed by a proxy in the instance does not get a token */
	if (mdd_header(q, "X-Forwarded-For", v, sizeof(v)))
		return mdd_text(r, 403, "Forbidden\n");
	if (mdd_header(q, "X-aws-ec2-metadata-token-ttl-seconds", v, sizeof(v)) != 1 ||
	    parse_uint(v, 1, MDD_TTL_MAX, &ttl))
		return mdd_text(r, 400,
				"Bad Request: X-aws-ec2-metadata-token-ttl-seconds must be "
				"1 to 21600\n");
	if (mdd_token_new(q->conn->net, mdd_i(q->inst, "id"), (unsigned int)ttl, token))
		return mdd_text(r, 500, "Internal Server Error\n");
	mdd_text(r, 200, token);
	snprintf(r->extra, sizeof(r->extra), "X-aws-ec2-metadata-token-ttl-seconds: %u\r\n",
		 (unsigned int)ttl);
}

/* A GET of the EC2 layout: a token, when one is sent or required, must be this caller's. */
static bool mdd_ec2_authorized(struct mdd_req *q)
{
	char token[MDD_TOKEN_HEX + 2];
	int ret = mdd_header(q, "X-aws-ec2-metadata-token", token, sizeof(token));

	if (!ret)
		return !mdd.d->opts.imds_require_token;
	return ret == 1 && mdd_token_ok(token, q->conn->net, mdd_i(q->inst, "id"));
}

static void mdd_ec2(struct mdd_req *q, const char *rest, struct mdd_resp *r)
{
	if (!strcmp(rest, "api/token"))
		return !strcmp(q->method, "PUT") ? mdd_token_put(q, r)
						 : mdd_text(r, 405, "Method Not Allowed\n");
	if (strcmp(q->method, "GET"))
		return mdd_text(r, 405, "Method Not Allowed\n");
	if (!mdd_ec2_authorized(q))
		return mdd_text(r, 401, "Unauthorized\n");
	if (!*rest)
		return mdd_text(r, 200, "meta-data/\nuser-data");
	if (!strcmp(rest, "user-data"))
		return mdd_user_data(q, r);
	if (!strcmp(rest, "meta-data"))
		return mdd_ec2_item(q, "", r);
	if (!strncmp(rest, "meta-data/", 10))
		return mdd_ec2_item(q, rest + 10, r);
	mdd_text(r, 404, "Not Found\n");
}

/* The caller, by (network, source address); false after answering 404. */
static bool mdd_caller(struct mdd_req *q, struct mdd_resp *r)
{
	struct store *s = pool_get(mdd.d->pool);
	struct error err = {0};
	int ret = STORE(s, instance_meta_lookup, q->conn->net, q->conn->peer, &q->inst, &err);

	pool_put(mdd.d->pool, s);
	if (ret == -ENOENT) {
		mdd_text(r, 404, "Not Found: no instance has this address\n");
		return false;
	}
	if (ret) {
		log_warn("metadata: network %lld, %s: %s", (long long)q->conn->net, q->conn->peer,
			 err.msg);
		mdd_text(r, 500, "Internal Server Error\n");
		return false;
	}
	return true;
}

static void mdd_route(struct mdd_req *q, struct mdd_resp *r)
{
	const char *p = q->path;

	if (strcmp(q->method, "GET") && strcmp(q->method, "PUT"))
		return mdd_text(r, 405, "Method Not Allowed\n");
	if (!strcmp(p, "/openstack") || !strcmp(p, "/openstack/"))
		return !strcmp(q->method, "GET") ? mdd_text(r, 200, MDD_OS_VERSION "\nlatest")
						 : mdd_text(r, 405, "Method Not Allowed\n");
	if (!strncmp(p, "/openstack/", 11)) {
		const char *v = p + 11;
		size_t vlen = strcspn(v, "/");

		if (strcmp(q->method, "GET"))
			return mdd_text(r, 405, "Method Not Allowed\n");
		if (!((vlen == 6 && !strncmp(v, "latest", 6)) ||
		      (vlen == strlen(MDD_OS_VERSION) && !strncmp(v, MDD_OS_VERSION, vlen))))
			return mdd_text(r, 404, "Not Found\n");
		if (!mdd_caller(q, r))
			return;
		return mdd_openstack(q, v[vlen] ? v + vlen + 1 : "", r);
	}
	if (!strcmp(p, "/latest") || !strncmp(p, "/latest/", 8)) {
		if (!mdd_caller(q, r))
			return;
		return mdd_ec2(q, p[7] ? p + 8 : "", r);
	}
	mdd_text(r, 404, "Not Found\n");
}

static const char *mdd_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Request Entity Too Large";
	default:
		return "Internal Server Error";
	}
}

/* Parses the whole request head in c->in (NUL-terminated) and answers it into r. */
static void mdd_handle(struct mdd_conn *c, struct mdd_resp *r)
{
	struct mdd_req q = {.conn = c};
	char *line_end = strstr(c->in, "\r\n"), *sp1, *sp2, cl[24];
	uint64_t len;

	sp1 = line_end ? memchr(c->in, ' ', (size_t)(line_end - c->in)) : NULL;
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
	if (!sp2 || (size_t)(sp1 - c->in) >= sizeof(q.method) ||
	    (size_t)(sp2 - sp1 - 1) >= sizeof(q.path) || sp1[1] != '/' ||
	    strncmp(sp2 + 1, "HTTP/1.", 7))
		return mdd_text(r, 400, "Bad Request\n");
	memcpy(q.method, c->in, (size_t)(sp1 - c->in));
	memcpy(q.path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	q.path[strcspn(q.path, "?#")] = 0;
	q.headers = line_end + 2;
	/* no request here has a body: one announced is refused rather than read */
	if (mdd_header(&q, "Transfer-Encoding", cl, sizeof(cl)) ||
	    (mdd_header(&q, "Content-Length", cl, sizeof(cl)) && parse_uint(cl, 0, 0, &len)))
		return mdd_text(r, 413, "Request Entity Too Large: no body expected\n");
	mdd_route(&q, r);
	json_decref(q.inst);
}

/* ---- connections ---- */

static void mdd_conn_close(struct mdd_conn *c)
{
	epoll_ctl(mdd.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
}

/*
 * Answered: half-closes and reads what the client still sends until it
 * closes (or the deadline), so that unread input (a request larger than
 * MDD_REQ_MAX) does not make the kernel reset the connection before the
 * client has read the answer.
 */
static void mdd_conn_drain(struct mdd_conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	char buf[4096];
	ssize_t n;

	if (!c->draining) {
		c->draining = true;
		shutdown(c->fd, SHUT_WR);
		epoll_ctl(mdd.ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	while ((n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		mdd_conn_close(c);
}

/* Writes what it can; drains the connection once all is out, closes it if the peer is gone. */
static void mdd_conn_flush(struct mdd_conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};

			epoll_ctl(mdd.ep, EPOLL_CTL_MOD, c->fd, &ev);
			return;
		}
		if (n <= 0)
			return mdd_conn_close(c);
		c->outoff += (size_t)n;
	}
	mdd_conn_drain(c);
}

static void mdd_conn_answer(struct mdd_conn *c, struct mdd_resp *r)
{
	FILE *f = open_memstream(&c->out, &c->outlen);

	if (!f) {
		free(r->body);
		return mdd_conn_close(c);
	}
	fprintf(f,
		"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		"Server: bunshin-metadata\r\nConnection: close\r\n\r\n",
		r->status, mdd_reason(r->status), r->ctype ?: "text/plain", r->len, r->extra);
	if (r->len)
		fwrite(r->body, 1, r->len, f);
	free(r->body);
	if (fclose(f)) {
		c->out = NULL;
		return mdd_conn_close(c);
	}
	c->outoff = 0;
	mdd_conn_flush(c);
}

static void mdd_conn_read(struct mdd_conn *c)
{
	struct mdd_resp r = {0};
	ssize_t n = recv(c->fd, c->in + c->len, MDD_REQ_MAX - c->len, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		return mdd_conn_close(c);
	c->len += (size_t)n;
	c->in[c->len] = 0;
	if (memchr(c->in, 0, c->len))
		mdd_text(&r, 400, "Bad Request\n");
	else if (strstr(c->in, "\r\n\r\n"))
		mdd_handle(c, &r);
	else if (c->len == MDD_REQ_MAX)
		mdd_text(&r, 413, "Request Entity Too Large\n");
	else
		return; /* more to come */
	/* the head is answered: nothing more is read from this connection */
	mdd_conn_answer(c, &r);
}

static void mdd_accept(struct mdd_net *e)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = accept4(e->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	struct mdd_conn *c = NULL;

	if (fd < 0)
		return;
	for (int i = 0; i < MDD_CONN_MAX && !c; i++) {
		if (mdd.conns[i].fd < 0)
			c = &mdd.conns[i];
	}
	/* full: this one waits its turn no more than the others would make it */
	if (!c || sa.sin_family != AF_INET) {
		close(fd);
		return;
	}
	c->kind = MDD_CONN;
	c->fd = fd;
	c->net = e->id;
	c->len = 0;
	c->out = NULL;
	c->outlen = c->outoff = 0;
	c->draining = false;
	c->deadline = mdd_now_ms() + MDD_TIMEOUT_MS;
	inet_ntop(AF_INET, &sa.sin_addr, c->peer, sizeof(c->peer));
	ev.data.ptr = c;
	if (epoll_ctl(mdd.ep, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		c->fd = -1;
	}
}

static void mdd_expire(void)
{
	uint64_t now = mdd_now_ms();

	for (int i = 0; i < MDD_CONN_MAX; i++) {
		if (mdd.conns[i].fd >= 0 && mdd.conns[i].deadline <= now)
			mdd_conn_close(&mdd.conns[i]);
	}
}

/* ---- the thread ---- */

static bool mdd_events(void)
{
	struct epoll_event ev[64];
	bool kicked = false;
	uint64_t v;
	int n = epoll_wait(mdd.ep, ev, 64, 250);

	for (int i = 0; i < n; i++) {
		enum mdd_kind *k = ev[i].data.ptr;

		if (*k == MDD_KICK) {
			kicked = read(mdd.kickfd, &v, sizeof(v)) > 0 || kicked;
		} else if (*k == MDD_LISTEN) {
			mdd_accept((struct mdd_net *)k);
		} else {
			struct mdd_conn *c = (struct mdd_conn *)k;

			if (c->fd < 0)
				continue;
			if (c->draining)
				mdd_conn_drain(c);
			else if (c->out)
				mdd_conn_flush(c);
			else
				mdd_conn_read(c);
		}
	}
	mdd_expire();
	return kicked;
}

static void *mdd_main(void *arg)
{
	uint64_t last = 0;
	bool kicked = true;

	(void)arg;
	while (!sup_quitting(mdd.d->sup)) {
		if (kicked || mdd_now_ms() - last >= MDD_PERIOD_MS) {
			mdd_sync();
			last = mdd_now_ms();
		}
		kicked = mdd_events();
	}
	__atomic_store_n(&mdd.running, false, __ATOMIC_RELEASE);
	for (int i = 0; i < MDD_CONN_MAX; i++) {
		if (mdd.conns[i].fd >= 0)
			mdd_conn_close(&mdd.conns[i]);
	}
	/* The bridges and their addresses stay for the VMs that keep running; the next bunshind
	 * listens again. */
	while (mdd.nets) {
		struct mdd_net *e = mdd.nets;

		mdd_close_listener(e);
		mdd.nets = e->next;
		free(e);
	}
	sup_helper_leave(mdd.d->sup);
	return NULL;
}

void mdd_begin(struct daemon *d)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &mdd.kick_kind};
	pthread_t t;

	mdd.d = d;
	for (int i = 0; i < MDD_CONN_MAX; i++)
		mdd.conns[i].fd = -1;
	mdd.ep = epoll_create1(EPOLL_CLOEXEC);
	mdd.kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mdd.ep < 0 || mdd.kickfd < 0 || epoll_ctl(mdd.ep, EPOLL_CTL_ADD, mdd.kickfd, &ev) ||
	    !sup_helper_enter(d->sup)) {
		log_warn("metadata: cannot start: %s", strerror(errno));
		return;
	}
	mdd.running = true;
	if (pthread_create(&t, NULL, mdd_main, NULL)) {
		mdd.running = false;
		sup_helper_leave(d->sup);
		log_warn("metadata: cannot start its thread");
		return;
	}
	pthread_detach(t);
}

void mdd_kick(void)
{
	uint64_t one = 1;

	if (__atomic_load_n(&mdd.running, __ATOMIC_ACQUIRE) &&
	    write(mdd.kickfd, &one, sizeof(one)) < 0)
		log_warn("metadata: kick: %s", strerror(errno));
}
