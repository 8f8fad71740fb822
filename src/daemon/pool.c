// SPDX-License-Identifier: MIT
/*
 * SQLite connections may not be shared by threads in the middle of a
 * transaction, so each request borrows one from here and gives it back.
 * Opening per request would re-read the schema every time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "daemon.h"

struct store_pool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	unsigned int size, nfree;
	struct store **free;
};

struct store_pool *pool_open(const char *path, unsigned int size, struct error *err)
{
	struct store_pool *p = calloc(1, sizeof(*p));

	if (!p || !(p->free = calloc(size, sizeof(*p->free)))) {
		free(p);
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->freed, NULL);
	p->size = size;
	for (; p->nfree < size; p->nfree++) {
		p->free[p->nfree] = store_sqlite_open(path, err);
		if (!p->free[p->nfree]) {
			pool_close(p);
			return NULL;
		}
	}
	return p;
}

struct store *pool_get(struct store_pool *p)
{
	struct store *s;

	pthread_mutex_lock(&p->lock);
	while (!p->nfree)
		pthread_cond_wait(&p->freed, &p->lock);
	s = p->free[--p->nfree];
	pthread_mutex_unlock(&p->lock);
	return s;
}

void pool_put(struct store_pool *p, struct store *s)
{
	pthread_mutex_lock(&p->lock);
	p->free[p->nfree++] = s;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

/* Every connection must be back. */
void pool_close(struct store_pool *p)
{
	if (!p)
		return;
	for (unsigned int i = 0; i < p->nfree; i++)
		p->free[i]->ops->close(p->free[i]);
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->lock);
	free(p->free);
	free(p);
}
