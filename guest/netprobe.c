/* SPDX-License-Identifier: MIT */
/*
 * test=netprobe: the test guest as a cloud instance. A DHCP lease
 * (netstack.c, options as test=dhcp), then the actions asked for, in this
 * order, each adding a field to the one final line:
 *   BUNSHIN-TEST name=netprobe result=pass ip=A.B.C.D router=A.B.C.D|none
 *     dns=A.B.C.D|none [ping1=ok|fail ...] [spoof=sent|fail]
 *     [udp=ok|fail] [tcp=ok|refused|reset|timeout bytes=N]
 *     [http1=STATUS ...] [served_udp=N] [served_tcp=N]
 * result=fail (reason=bad-option or a dhcp word) only when the options,
 * the device or DHCP failed; a failed action only says so in its field.
 * Options:
 *   ping=IP[+IP...]      up to 4 targets, 3 echo requests each (1 s apart)
 *   spoof=IP spoof_to=IP 5 echo requests to spoof_to from source address
 *                        spoof; spoof_mac=1 adds 5 from a made-up MAC
 *   udp=IP:PORT          sends udp_msg=WORD (bunshin), waits for it back
 *   tcp=IP:PORT          connects, sends tcp_msg=WORD (bunshin) + "\n",
 *                        reads until the peer closes: BUNSHIN-DATA tcp TEXT
 *   http=IP[:PORT]/PATH[+...]  up to 4 GETs (HTTP/1.1, Connection: close):
 *                        httpN=STATUS (0: no answer), BUNSHIN-DATA httpN BODY;
 *                        imds=1 first PUTs /latest/api/token (ttl 60) to
 *                        each target and sends the token with its GET
 *   serve_udp=PORT serve_tcp=PORT serve_ms=N (5000, at most 60000): echo
 *                        servers (UDP: each datagram back to its sender; TCP:
 *                        one connection at a time, its first line back, then
 *                        FIN), started after the other actions, right after
 *                        the line BUNSHIN-READY netprobe ip=A.B.C.D
 *   ms=N                 deadline of each udp/tcp/http step (2000)
 *   dhcp_tries, dhcp_wait_ms, virtio_poll, virtio_features as test=dhcp
 * BUNSHIN-DATA text: at most 2000 bytes, bytes outside 0x20..0x7e and '\'
 * as \xHH; an HTTP body is de-chunked (Transfer-Encoding: chunked), and
 * a response with Content-Length ends there (a server that keeps the
 * connection open costs no deadline).
 * tcp=reset: the peer reset an established connection. Echo requests to
 * the guest's address are answered while any action runs.
 */
#include "nettcp.h"

#define PING_ID	   0x4e50
#define MAX_TARGET 4
#define DATA_MAX   2000
#define RX_CAP	   8192
#define REQ_MAX	   1024
#define WORD_MAX   256

struct target {
	uint8_t ip[4];
	uint16_t port;
	const char *path; /* http: from the '/' on */
	size_t path_len;
};

static struct {
	struct line l;
	uint64_t ms;
	const uint8_t *ping_ip;
	uint16_t ping_seq, udp_lport, udp_rport, serve_udp;
	const uint8_t *udp_ip;
	const char *udp_msg;
	size_t udp_msg_len;
	bool pong, udp_back;
	uint32_t served_udp;
} s;

static uint8_t rx[RX_CAP];
static uint8_t req[REQ_MAX];
static char esc[DATA_MAX * 4 + 64];
static struct tcp_conn conn;

/* ---- options ---- */

/* "IP[:PORT][/PATH]" in [v, v + n); PORT is required when def_port is 0. */
static bool parse_target(const char *v, size_t n, uint16_t def_port, bool path, struct target *t)
{
	size_t i = 0, colon = n, slash = n;
	uint64_t port = def_port;

	for (; i < n; i++) {
		if (v[i] == ':' && colon == n && slash == n)
			colon = i;
		if (v[i] == '/' && slash == n)
			slash = i;
	}
	if (!ns_parse_ip(v, colon < slash ? colon : slash, t->ip))
		return false;
	if (colon < slash && !parse_u64(v + colon + 1, slash - colon - 1, 10, &port))
		return false;
	if (!port || port > 65535 || (path != (slash < n)))
		return false;
	t->port = (uint16_t)port;
	t->path = v + slash;
	t->path_len = n - slash;
	return true;
}

/* Up to MAX_TARGET '+'-separated targets of option key: their count, -1 when malformed. */
static int parse_list(const char *key, uint16_t def_port, bool port, bool path, struct target *t)
{
	const char *v;
	size_t n, i = 0;
	int k = 0;

	if (!opt_get(key, &v, &n))
		return 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && v[j] != '+')
			j++;
		if (k == MAX_TARGET || j == i)
			return -1;
		if (port || path) {
			if (!parse_target(v + i, j - i, def_port, path, &t[k]))
				return -1;
		} else if (!ns_parse_ip(v + i, j - i, t[k].ip)) {
			return -1;
		}
		k++;
		i = j + 1;
	}
	return k;
}

static bool opt_ip(const char *key, uint8_t *ip, bool *has)
{
	const char *v;
	size_t n;

	*has = opt_get(key, &v, &n);
	return !*has || ns_parse_ip(v, n, ip);
}

/* A word option: printable, no more than WORD_MAX bytes. */
static bool opt_word(const char *key, const char *def, const char **w, size_t *n)
{
	*w = def;
	*n = strlen(def);
	if (!opt_get(key, w, n))
		return true;
	if (!*n || *n > WORD_MAX)
		return false;
	for (size_t i = 0; i < *n; i++)
		if ((*w)[i] < 0x21 || (*w)[i] > 0x7e)
			return false;
	return true;
}

/* ---- output ---- */

static void field_n(const char *key, uint32_t n, const char *v)
{
	line_chr(&s.l, ' ');
	line_str(&s.l, key);
	line_dec(&s.l, n);
	line_chr(&s.l, '=');
	line_str(&s.l, v);
}

/* BUNSHIN-DATA TAG TEXT on its own line, escaped, at most DATA_MAX bytes. */
static void data_line(const char *tag, uint32_t n, const uint8_t *d, uint32_t len)
{
	size_t o = 0;

	o += (size_t)(memcpy(esc, "BUNSHIN-DATA ", 13), 13);
	for (const char *t = tag; *t; t++)
		esc[o++] = *t;
	if (n)
		esc[o++] = (char)('0' + n);
	esc[o++] = ' ';
	for (uint32_t i = 0; i < len && i < DATA_MAX; i++) {
		if (d[i] >= 0x20 && d[i] <= 0x7e && d[i] != '\\') {
			esc[o++] = (char)d[i];
			continue;
		}
		esc[o++] = '\\';
		esc[o++] = 'x';
		esc[o++] = "0123456789abcdef"[d[i] >> 4];
		esc[o++] = "0123456789abcdef"[d[i] & 15];
	}
	esc[o++] = '\n';
	serial_lock();
	serial_write(esc, o);
	serial_unlock();
}

/* ---- ICMP and UDP ---- */

static void on_icmp(const struct ns_pkt *p)
{
	if (s.ping_ip && p->len >= 8 && p->data[0] == 0 && !memcmp(p->src, s.ping_ip, 4) &&
	    net_get16(p->data + 4) == PING_ID && net_get16(p->data + 6) == s.ping_seq &&
	    !net_csum(p->data, p->len))
		s.pong = true;
}

static bool udp_out(bool reply, const uint8_t *mac, const uint8_t *dst, uint16_t sport,
		    uint16_t dport, const void *d, uint32_t n)
{
	uint8_t *u = ns_payload(reply);
	uint16_t sum;

	if (n + 8 > NS_PAYLOAD)
		return false;
	net_put16(u, sport);
	net_put16(u + 2, dport);
	net_put16(u + 4, (uint16_t)(n + 8));
	net_put16(u + 6, 0);
	memcpy(u + 8, d, n);
	sum = ns_l4_csum(g_ns.ip, dst, 17, u, n + 8);
	net_put16(u + 6, sum ? sum : 0xffff);
	return ns_send_ipv4(reply, mac, NULL, NULL, dst, 17, n + 8);
}

static void on_udp(const struct ns_pkt *p)
{
	const uint8_t *u = p->data;
	uint32_t ulen;

	if (p->len < 8)
		return;
	ulen = net_get16(u + 4);
	if (ulen < 8 || ulen > p->len ||
	    (net_get16(u + 6) && ns_l4_csum(p->src, p->dst, 17, u, ulen)))
		return;
	if (s.serve_udp && net_get16(u + 2) == s.serve_udp) {
		if (udp_out(true, p->src_mac, p->src, s.serve_udp, net_get16(u), u + 8, ulen - 8))
			s.served_udp++;
		return;
	}
	if (s.udp_ip && net_get16(u + 2) == s.udp_lport && net_get16(u) == s.udp_rport &&
	    !memcmp(p->src, s.udp_ip, 4) && ulen - 8 == s.udp_msg_len &&
	    !memcmp(u + 8, s.udp_msg, s.udp_msg_len))
		s.udp_back = true;
}

/* ---- actions ---- */

static bool send_echo(const uint8_t *mac, const uint8_t *src_mac, const uint8_t *src,
		      const uint8_t *dst, uint16_t seq)
{
	uint8_t *icmp = ns_payload(false);

	memset(icmp, 0, 40);
	icmp[0] = 8;
	net_put16(icmp + 4, PING_ID);
	net_put16(icmp + 6, seq);
	for (int i = 8; i < 40; i++)
		icmp[i] = (uint8_t)('a' + i % 26);
	net_put16(icmp + 2, net_csum(icmp, 40));
	return ns_send_ipv4(false, mac, src_mac, src, dst, 1, 40);
}

static const char *ping_one(const uint8_t *ip)
{
	uint8_t mac[6];

	if (!ns_resolve(ip, mac, 3000))
		return "fail";
	s.ping_ip = ip;
	s.pong = false;
	for (int t = 0; t < 3 && !s.pong; t++) {
		s.ping_seq++;
		if (!send_echo(mac, NULL, NULL, ip, s.ping_seq) || !ns_poll(&s.pong, 1000))
			break;
	}
	s.ping_ip = NULL;
	return s.pong ? "ok" : "fail";
}

static const char *spoof(const uint8_t *src, const uint8_t *dst, bool fake_mac)
{
	static const uint8_t made_up[6] = {0x02, 0x5b, 0xad, 0x5b, 0xad, 0x01};
	uint8_t mac[6];

	if (!ns_resolve(dst, mac, 3000))
		return "fail";
	for (int m = 0; m < (fake_mac ? 2 : 1); m++)
		for (uint16_t i = 0; i < 5; i++)
			if (!send_echo(mac, m ? made_up : NULL, src, dst, (uint16_t)(0x5000 + i)))
				return "fail";
	return "sent";
}

static const char *udp_probe(const struct target *t)
{
	uint8_t mac[6];

	if (!ns_resolve(t->ip, mac, 1000))
		return "fail";
	s.udp_ip = t->ip;
	s.udp_rport = t->port;
	s.udp_lport = (uint16_t)(49152 + (uint32_t)rdtsc() % 16384);
	s.udp_back = false;
	for (int i = 0; i < 3 && !s.udp_back; i++)
		if (!udp_out(false, mac, t->ip, s.udp_lport, t->port, s.udp_msg,
			     (uint32_t)s.udp_msg_len) ||
		    !ns_poll(&s.udp_back, s.ms / 3 + 1))
			break;
	s.udp_ip = NULL;
	return s.udp_back ? "ok" : "fail";
}

static void tcp_probe(const struct target *t)
{
	const char *w, *res;
	size_t n;

	opt_word("tcp_msg", "bunshin", &w, &n);
	memcpy(req, w, n);
	req[n] = '\n';
	conn.rx = rx;
	conn.rx_cap = RX_CAP;
	conn.done = NULL;
	res = tcp_client(&conn, t->ip, t->port, req, (uint32_t)n + 1, s.ms);
	line_kv_str(&s.l, "tcp", res);
	line_kv_dec(&s.l, "bytes", conn.rx_total);
	data_line("tcp", 0, rx, conn.rx_len);
}

/* ---- HTTP ---- */

static void put(size_t *o, const char *str, size_t n)
{
	if (*o + n < REQ_MAX)
		memcpy(req + *o, str, n);
	*o += n;
}

static void put_s(size_t *o, const char *str)
{
	put(o, str, strlen(str));
}

/* The request in req: its length, 0 when it does not fit. */
static size_t http_req(const char *method, const struct target *t, const char *path,
		       size_t path_len, const char *hdr, size_t hdr_len)
{
	struct line host;
	size_t o = 0;

	line_init(&host);
	ns_line_ip(&host, "x", t->ip, true);
	if (t->port != 80) {
		line_chr(&host, ':');
		line_dec(&host, t->port);
	}
	put_s(&o, method);
	put_s(&o, " ");
	put(&o, path, path_len);
	put_s(&o, " HTTP/1.1\r\nHost: ");
	put(&o, host.buf + 3, host.len - 3);
	put_s(&o, "\r\nUser-Agent: bunshin-netprobe\r\nAccept: */*\r\nConnection: close\r\n");
	put(&o, hdr, hdr_len);
	put_s(&o, "\r\n");
	return o < REQ_MAX && o <= TCP_MSS ? o : 0;
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Where [h, h + n) holds needle (lower case), ignoring case; n when nowhere. */
static uint32_t find_ci(const uint8_t *h, uint32_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (uint32_t i = 0; i + k <= n; i++) {
		size_t j = 0;
		while (j < k && lower(h[i + j]) == (uint8_t)needle[j])
			j++;
		if (j == k)
			return i;
	}
	return n;
}

/* An HTTP response with a Content-Length is complete before the peer closes (keep-alive). */
static bool http_done(const struct tcp_conn *c)
{
	uint32_t hend = find_ci(c->rx, c->rx_len, "\r\n\r\n"), i;
	uint64_t cl = 0;

	if (hend == c->rx_len)
		return false;
	i = find_ci(c->rx, hend, "\ncontent-length:");
	if (i == hend)
		return false;
	for (i += 16; i < hend && c->rx[i] == ' '; i++)
		;
	for (; i < hend && c->rx[i] >= '0' && c->rx[i] <= '9' && cl < 1u << 30; i++)
		cl = cl * 10 + (uint64_t)(c->rx[i] - '0');
	return c->rx_total >= hend + 4 + cl;
}

/* Undoes chunked transfer coding in place: the body's length (what decoded before any damage). */
static uint32_t dechunk(uint8_t *b, uint32_t n)
{
	uint32_t in = 0, out = 0;

	while (in < n) {
		uint64_t size = 0;
		uint32_t digits = 0;
		int v;

		for (; in < n && digits < 8; in++, digits++) {
			uint8_t c = lower(b[in]);
			v = c >= '0' && c <= '9' ? c - '0'
						 : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
			if (v < 0)
				break;
			size = size << 4 | (uint64_t)v;
		}
		while (in < n && b[in] != '\n') /* chunk extensions */
			in++;
		if (!digits || in++ >= n || size == 0)
			break;
		if (size > n - in)
			size = n - in;
		for (uint32_t k = 0; k < size; k++) /* out <= in: a forward copy is safe */
			b[out++] = b[in + k];
		in += (uint32_t)size + 2; /* CRLF */
	}
	return out;
}

/* Status code of the response in rx; *body its body. 0 when it is no HTTP response. */
static uint32_t http_parse(uint32_t len, const uint8_t **body, uint32_t *blen)
{
	uint64_t code;
	uint32_t i;

	if (len < 12 || memcmp(rx, "HTTP/1.", 7) || rx[8] != ' ' ||
	    !parse_u64((const char *)rx + 9, 3, 10, &code) || code < 100)
		return 0;
	for (i = 12; i + 4 <= len && memcmp(rx + i, "\r\n\r\n", 4); i++)
		;
	*body = rx + (i + 4 <= len ? i + 4 : len);
	*blen = (uint32_t)(rx + len - *body);
	if (find_ci(rx, i, "\ntransfer-encoding: chunked") < i)
		*blen = dechunk(rx + i + 4 <= rx + len ? rx + i + 4 : rx + len, *blen);
	return (uint32_t)code;
}

/* One exchange: the status (0: none) and the body. */
static uint32_t http_do(const struct target *t, const char *method, const char *path,
			size_t path_len, const char *hdr, size_t hdr_len, const uint8_t **body,
			uint32_t *blen)
{
	size_t n = http_req(method, t, path, path_len, hdr, hdr_len);

	*body = rx;
	*blen = 0;
	if (!n)
		return 0;
	conn.rx = rx;
	conn.rx_cap = RX_CAP;
	conn.done = http_done;
	tcp_client(&conn, t->ip, t->port, req, (uint32_t)n, s.ms);
	return http_parse(conn.rx_len, body, blen);
}

/* The IMDSv2 token header for t, from a PUT; its length (0: none). */
static size_t imds_token(const struct target *t, char *hdr, size_t cap)
{
	static const char ttl[] = "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n";
	static const char name[] = "X-aws-ec2-metadata-token: ";
	const uint8_t *body;
	uint32_t blen;
	size_t o;

	if (http_do(t, "PUT", "/latest/api/token", 17, ttl, sizeof(ttl) - 1, &body, &blen) != 200)
		return 0;
	while (blen && (body[blen - 1] == '\n' || body[blen - 1] == '\r'))
		blen--;
	if (!blen || blen + sizeof(name) + 2 > cap)
		return 0;
	for (uint32_t i = 0; i < blen; i++)
		if (body[i] < 0x21 || body[i] > 0x7e)
			return 0; /* a header must not be split by what the server sent */
	memcpy(hdr, name, sizeof(name) - 1);
	o = sizeof(name) - 1;
	memcpy(hdr + o, body, blen);
	o += blen;
	memcpy(hdr + o, "\r\n", 2);
	return o + 2;
}

static void http_probe(const struct target *t, uint32_t k, bool imds)
{
	char hdr[WORD_MAX + 64], num[12];
	size_t hlen = imds ? imds_token(t, hdr, sizeof(hdr)) : 0;
	const uint8_t *body = rx;
	uint32_t blen = 0, code = 0;
	struct line tmp;

	if (!imds || hlen)
		code = http_do(t, "GET", t->path, t->path_len, hdr, hlen, &body, &blen);
	line_init(&tmp);
	line_dec(&tmp, code);
	memcpy(num, tmp.buf, tmp.len);
	num[tmp.len] = 0;
	field_n("http", k, num);
	data_line("http", k, body, code ? blen : 0);
}

/* ---- serving ---- */

static void serve(uint64_t udp_port, uint64_t tcp_port, uint64_t ms, const char **fail)
{
	uint64_t end = rdtsc() + ms * (tsc_hz() / 1000);
	uint32_t served_tcp = 0;
	bool dev_fail = false;
	struct line l;

	s.serve_udp = (uint16_t)udp_port;
	line_init(&l);
	line_str(&l, "BUNSHIN-READY netprobe");
	ns_line_ip(&l, "ip", g_ns.ip, true);
	line_emit(&l);
	conn.rx = rx;
	conn.rx_cap = RX_CAP;
	if (tcp_port)
		served_tcp = tcp_serve(&conn, (uint16_t)tcp_port, end, &dev_fail);
	else
		dev_fail = !ns_poll(NULL, ms);
	if (dev_fail)
		*fail = g_ns.d.fail ? g_ns.d.fail : "device";
	if (udp_port)
		line_kv_dec(&s.l, "served_udp", s.served_udp);
	if (tcp_port)
		line_kv_dec(&s.l, "served_tcp", served_tcp);
}

/* ---- the scenario ---- */

struct probe_opts {
	struct target ping[MAX_TARGET], udp[MAX_TARGET], tcp[MAX_TARGET], http[MAX_TARGET];
	int nping, nudp, ntcp, nhttp;
	uint8_t spoof[4], spoof_to[4];
	bool has_spoof, has_spoof_to;
	uint64_t tries, wait_ms, spoof_mac, imds, serve_udp, serve_tcp, serve_ms;
};

static bool parse_opts(struct probe_opts *o)
{
	const char *w;
	size_t n;

	o->tries = 4;
	o->wait_ms = 2000;
	o->serve_ms = 5000;
	s.ms = 2000;
	opt_u64("dhcp_tries", 10, &o->tries);
	opt_u64("dhcp_wait_ms", 10, &o->wait_ms);
	opt_u64("ms", 10, &s.ms);
	opt_u64("spoof_mac", 10, &o->spoof_mac);
	opt_u64("imds", 10, &o->imds);
	opt_u64("serve_udp", 10, &o->serve_udp);
	opt_u64("serve_tcp", 10, &o->serve_tcp);
	opt_u64("serve_ms", 10, &o->serve_ms);
	o->nping = parse_list("ping", 0, false, false, o->ping);
	o->nudp = parse_list("udp", 0, true, false, o->udp);
	o->ntcp = parse_list("tcp", 0, true, false, o->tcp);
	o->nhttp = parse_list("http", 80, false, true, o->http);
	if (o->nping < 0 || o->nudp < 0 || o->ntcp < 0 || o->nhttp < 0 || o->nudp > 1 ||
	    o->ntcp > 1)
		return false;
	if (!opt_ip("spoof", o->spoof, &o->has_spoof) ||
	    !opt_ip("spoof_to", o->spoof_to, &o->has_spoof_to) || o->has_spoof != o->has_spoof_to)
		return false;
	if (!opt_word("udp_msg", "bunshin", &s.udp_msg, &s.udp_msg_len) ||
	    !opt_word("tcp_msg", "bunshin", &w, &n))
		return false;
	return o->tries && o->tries <= 16 && o->wait_ms && o->wait_ms <= 60000 && s.ms &&
	       s.ms <= 60000 && o->serve_ms && o->serve_ms <= 60000 && o->serve_udp <= 65535 &&
	       o->serve_tcp <= 65535 && o->spoof_mac <= 1 && o->imds <= 1;
}

static void actions(struct probe_opts *o, const char **fail)
{
	ns_set_handler(1, on_icmp);
	ns_set_handler(17, on_udp);
	for (int i = 0; i < o->nping; i++)
		field_n("ping", (uint32_t)i + 1, ping_one(o->ping[i].ip));
	if (o->has_spoof)
		line_kv_str(&s.l, "spoof", spoof(o->spoof, o->spoof_to, o->spoof_mac));
	if (o->nudp)
		line_kv_str(&s.l, "udp", udp_probe(&o->udp[0]));
	if (o->ntcp)
		tcp_probe(&o->tcp[0]);
	for (int i = 0; i < o->nhttp; i++)
		http_probe(&o->http[i], (uint32_t)i + 1, o->imds);
	if (o->serve_udp || o->serve_tcp)
		serve(o->serve_udp, o->serve_tcp, o->serve_ms, fail);
}

void run_netprobe(void)
{
	static struct probe_opts o;
	const char *reason = NULL;
	struct line head;

	memset(&s, 0, sizeof(s));
	memset(&o, 0, sizeof(o));
	line_init(&s.l);
	if (!parse_opts(&o))
		reason = "bad-option";
	else
		reason = ns_up(o.tries, o.wait_ms);
	if (!reason)
		actions(&o, &reason);
	ns_down();
	line_init(&head);
	line_str(&head, "BUNSHIN-TEST name=netprobe result=");
	line_str(&head, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&head, "reason", reason);
	if (memcmp(g_ns.ip, "\0\0\0\0", 4)) {
		ns_line_ip(&head, "ip", g_ns.ip, true);
		ns_line_ip(&head, "router", g_ns.lease.router, g_ns.lease.has_router);
		ns_line_ip(&head, "dns", g_ns.lease.dns, g_ns.lease.has_dns);
	}
	line_strn(&head, s.l.buf, s.l.len);
	line_emit(&head);
}
