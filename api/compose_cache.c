#include "compose_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compose.h"
#include "id.h"

struct compose_cache {
    pthread_mutex_t lock;
    pthread_cond_t composed; /* some composition finished (or failed) */
    size_t limit, used;      /* bytes */
    api_entry *head, *tail;  /* findable entries, most recently used first */
    int count;
    metrics *m;              /* not owned; may be NULL */
};

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e6 * (double)t.tv_sec + 1e-3 * (double)t.tv_nsec;
}

compose_cache *compose_cache_new(size_t limit, metrics *m) {
    compose_cache *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    if (pthread_mutex_init(&c->lock, NULL)) {
        free(c);
        return NULL;
    }
    if (pthread_cond_init(&c->composed, NULL)) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
    }
    c->limit = limit;
    c->m = m;
    metrics_set(m, METRIC_CACHE_BYTES_LIMIT, NULL, (double)limit);
    metrics_set(m, METRIC_CACHE_BYTES_USED, NULL, 0);
    return c;
}

void compose_cache_free(compose_cache *c) {
    if (!c) return;
    for (api_entry *e = c->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    pthread_cond_destroy(&c->composed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- the list, under the lock -------------------------------------------- */

static void list_unlink(compose_cache *c, api_entry *e) {
    if (!e->linked) return;
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
    e->linked = false;
    c->count--;
}

static void list_push_front(compose_cache *c, api_entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
    e->linked = true;
    c->count++;
}

static api_entry *list_find(const compose_cache *c, const char *id) {
    for (api_entry *e = c->head; e; e = e->next)
        if (!strcmp(e->id, id)) return e;
    return NULL;
}

/* e is unlinked and unpinned: give its memory back. */
static void entry_drop(compose_cache *c, api_entry *e) {
    c->used -= e->bytes;
    entry_free(e);
}

/* Least recently used unpinned entries go until the budget holds. */
static void evict_locked(compose_cache *c) {
    for (api_entry *e = c->tail, *prev; e && c->used > c->limit; e = prev) {
        prev = e->prev;
        if (e->refs > 0 || !e->ready) continue;
        list_unlink(c, e);
        metrics_add(c->m, METRIC_CACHE_EVICTION, e->id, NULL, 1);
        entry_drop(c, e);
    }
    metrics_set(c->m, METRIC_CACHE_BYTES_USED, NULL, (double)c->used);
}

/* ---- pinning -------------------------------------------------------------- */

/* Plan and build outside the lock; the entry is pinned by its composer. */
static moda_status compose_entry(api_entry *e, moda_backend *be, int n, float tau, compose_mode mode) {
    const registry_model *rm = &e->parent->rm;
    compose_plan p = {0};
    graph *g = NULL;
    moda_status s = compose_plan_make_mode(rm->g, &rm->r, e->classes, n, tau, mode, &p);
    if (s == MODA_OK) s = compose_build(rm->g, &p, be, &g);
    if (s == MODA_OK) {
        entry_set_graph(e, g, true);
        e->info.params = compose_plan_params(rm->g, &p);
        e->info.macs = compose_plan_macs(rm->g, &p);
    }
    compose_plan_free(&p);
    return s;
}

int compose_cache_acquire(compose_cache *c, const api_model *parent, const int *classes, int n, float tau,
                          compose_mode mode, moda_backend *be, int workers, api_entry **out, bool *cached,
                          api_error *err) {
    *out = NULL;
    *cached = false;
    char id[API_ID_MAX];
    if (!api_id_format(id, sizeof id, parent->rm.name, classes, n, tau, mode))
        return api_error_set(err, "invalid_id", "the composed id would exceed %d characters", API_ID_MAX - 1);
    pthread_mutex_lock(&c->lock);
    api_entry *e = list_find(c, id);
    if (e && e->parent != parent) { /* composed from a model a reload has replaced */
        list_unlink(c, e);
        if (e->refs == 0) entry_drop(c, e);
        else e->doomed = true;
        e = NULL;
    }
    if (e) {
        e->refs++;
        list_unlink(c, e);
        list_push_front(c, e);
        while (!e->ready) pthread_cond_wait(&c->composed, &c->lock);
        if (e->fail.code) { /* the composer unlinked it */
            *err = e->fail;
            if (--e->refs == 0) entry_drop(c, e);
            pthread_mutex_unlock(&c->lock);
            return -1;
        }
        metrics_add(c->m, METRIC_CACHE_HIT, id, NULL, 1);
        pthread_mutex_unlock(&c->lock);
        *out = e;
        *cached = true;
        return 0;
    }
    if (!(e = entry_new(parent, classes, n, tau, mode, workers))) {
        pthread_mutex_unlock(&c->lock);
        return api_error_set(err, "internal", "out of memory");
    }
    e->refs = 1;
    list_push_front(c, e);
    metrics_add(c->m, METRIC_CACHE_MISS, id, NULL, 1);
    pthread_mutex_unlock(&c->lock);

    double t0 = now_us();
    moda_status s = compose_entry(e, be, n, tau, mode);
    double us = now_us() - t0;

    pthread_mutex_lock(&c->lock);
    e->ready = true;
    if (s != MODA_OK) {
        if (s == MODA_ERR_UNSUPPORTED)
            api_error_set(&e->fail, "invalid_combination", "%s cannot be composed %s: %s", parent->rm.name,
                          mode == COMPOSE_TIED ? "tied" : "per layer", moda_status_string(s));
        else
            api_error_set(&e->fail, "internal", "composing %s: %s", id, moda_status_string(s));
        *err = e->fail;
        list_unlink(c, e);
        pthread_cond_broadcast(&c->composed);
        if (--e->refs == 0) entry_drop(c, e);
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    e->compose_ms = us / 1e3;
    e->bytes = graph_param_bytes(e->g);
    c->used += e->bytes;
    metrics_add(c->m, METRIC_COMPOSE_COUNT, parent->rm.name, NULL, 1);
    metrics_add(c->m, METRIC_COMPOSE_DURATION_US, parent->rm.name, NULL, us);
    evict_locked(c);
    pthread_cond_broadcast(&c->composed);
    pthread_mutex_unlock(&c->lock);
    *out = e;
    return 0;
}

void compose_cache_release(compose_cache *c, api_entry *e) {
    if (!e || e->permanent) return;
    pthread_mutex_lock(&c->lock);
    if (--e->refs == 0 && !e->linked) {
        entry_drop(c, e); /* deleted while pinned */
        metrics_set(c->m, METRIC_CACHE_BYTES_USED, NULL, (double)c->used);
    } else {
        evict_locked(c); /* an entry over the budget goes once unpinned */
    }
    pthread_mutex_unlock(&c->lock);
}

bool compose_cache_delete(compose_cache *c, const char *id) {
    pthread_mutex_lock(&c->lock);
    api_entry *e = list_find(c, id);
    if (e) {
        list_unlink(c, e);
        if (e->refs == 0) entry_drop(c, e);
        else e->doomed = true;
        metrics_set(c->m, METRIC_CACHE_BYTES_USED, NULL, (double)c->used);
    }
    pthread_mutex_unlock(&c->lock);
    return e != NULL;
}

int compose_cache_drop_parent(compose_cache *c, const api_model *parent) {
    int dropped = 0;
    pthread_mutex_lock(&c->lock);
    for (api_entry *e = c->head, *next; e; e = next) {
        next = e->next;
        if (e->parent != parent) continue;
        list_unlink(c, e);
        if (e->refs == 0) entry_drop(c, e);
        else e->doomed = true;
        dropped++;
    }
    metrics_set(c->m, METRIC_CACHE_BYTES_USED, NULL, (double)c->used);
    pthread_mutex_unlock(&c->lock);
    return dropped;
}

void compose_cache_resize(compose_cache *c, api_entry *e, size_t old_bytes, size_t new_bytes) {
    if (e->permanent) return;
    pthread_mutex_lock(&c->lock);
    e->bytes = e->bytes - old_bytes + new_bytes;
    c->used = c->used - old_bytes + new_bytes;
    evict_locked(c);
    pthread_mutex_unlock(&c->lock);
}

size_t compose_cache_bytes_used(compose_cache *c) {
    pthread_mutex_lock(&c->lock);
    size_t used = c->used;
    pthread_mutex_unlock(&c->lock);
    return used;
}

int compose_cache_count(compose_cache *c) {
    pthread_mutex_lock(&c->lock);
    int n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}
