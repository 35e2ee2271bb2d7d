/* The dynamic batcher: per-key queues under one mutex, each waiter on a
 * condition variable of its own so that a finished batch wakes only its
 * owners (and at most one candidate collector per queue). */
#include "batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct queue queue;

typedef struct item {
    const batch_request *r;
    api_error *err;        /* the caller's; written before done */
    pthread_cond_t cv;     /* signalled when done, or to offer collection */
    uint64_t t_submit;
    bool taken, done;
    int rc;
    batch_outcome outcome;
    struct item *next;     /* in the queue, then in a taken batch */
} item;

struct queue {
    char *key;             /* owned */
    item *head, *tail;     /* waiting requests, FIFO */
    int samples;           /* queued samples */
    bool collecting;       /* a collector holds an instance for this queue */
    int users;             /* batcher_run calls on this queue not yet returned */
    pthread_cond_t fill;   /* the collector waits here for more samples */
    queue *next;
};

struct batcher {
    pthread_mutex_t mu;
    pthread_condattr_t monotonic;
    int *free_instances;   /* (n_free) of (instances) */
    int n_free, instances;
    queue *queues;
    batch_run_fn run;
    batch_observe_fn observe;
    void *observe_ctx;
    atomic_int busy;
};

uint64_t batcher_now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static struct timespec to_timespec(uint64_t us) {
    return (struct timespec){.tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000};
}

batcher *batcher_new(int instances, batch_run_fn run, batch_observe_fn observe, void *observe_ctx) {
    if (instances < 1 || !run) return NULL;
    batcher *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->free_instances = malloc((size_t)instances * sizeof(int));
    if (!b->free_instances) {
        free(b);
        return NULL;
    }
    for (int i = 0; i < instances; i++) b->free_instances[i] = instances - 1 - i; /* 0 is taken first */
    b->n_free = b->instances = instances;
    b->run = run;
    b->observe = observe;
    b->observe_ctx = observe_ctx;
    atomic_init(&b->busy, 0);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_init(&b->monotonic);
    pthread_condattr_setclock(&b->monotonic, CLOCK_MONOTONIC);
    return b;
}

void batcher_free(batcher *b) {
    if (!b) return;
    for (queue *q = b->queues, *next; q; q = next) { /* none expected: queues go when idle */
        next = q->next;
        pthread_cond_destroy(&q->fill);
        free(q->key);
        free(q);
    }
    pthread_condattr_destroy(&b->monotonic);
    pthread_mutex_destroy(&b->mu);
    free(b->free_instances);
    free(b);
}

int batcher_busy(const batcher *b) { return b ? atomic_load_explicit(&b->busy, memory_order_relaxed) : 0; }

/* ---- queues (caller holds mu) ---- */

static queue *queue_get(batcher *b, const char *key) {
    for (queue *q = b->queues; q; q = q->next)
        if (!strcmp(q->key, key)) return q;
    queue *q = calloc(1, sizeof(*q));
    if (!q || !(q->key = strdup(key))) {
        free(q);
        return NULL;
    }
    pthread_cond_init(&q->fill, &b->monotonic);
    q->next = b->queues;
    b->queues = q;
    return q;
}

/* Frees q once nobody uses it, so the queues follow the models in use. */
static void queue_put(batcher *b, queue *q) {
    if (--q->users > 0 || q->head || q->collecting) return;
    for (queue **p = &b->queues; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            break;
        }
    pthread_cond_destroy(&q->fill);
    free(q->key);
    free(q);
}

static void queue_remove(queue *q, item *it) {
    item *prev = NULL;
    for (item *p = q->head; p; prev = p, p = p->next)
        if (p == it) {
            if (prev) prev->next = p->next;
            else q->head = p->next;
            if (q->tail == p) q->tail = prev;
            q->samples -= it->r->n;
            it->next = NULL;
            return;
        }
}

/* Offers collection of q to its first waiter other than `except`. */
static void offer_collection(queue *q, const item *except) {
    for (item *p = q->head; p; p = p->next)
        if (p != except) {
            pthread_cond_signal(&p->cv);
            return;
        }
}

/* After an instance is freed: every queue with waiters and no collector. */
static void offer_instance(batcher *b) {
    for (queue *q = b->queues; q; q = q->next)
        if (q->head && !q->collecting) offer_collection(q, NULL);
}

/* ---- running a batch (without the lock) ---- */

static void run_alone(batcher *b, int instance, item *it) {
    const batch_request *r = it->r;
    it->rc = b->run(r->ctx, instance, r->x, r->n, r->out, it->err);
    if (b->observe) b->observe(b->observe_ctx, r->key, r->ctx, r->n, 1, it->rc == 0);
}

/* Runs the taken items as one call and splits the results; when that
 * fails, runs each alone so that only a faulty request fails. */
static void run_batch(batcher *b, int instance, item *batch, int samples) {
    if (!batch->next) {
        run_alone(b, instance, batch);
        return;
    }
    const batch_request *first = batch->r;
    size_t in = first->in_size, out = first->out_size;
    float *x = malloc((size_t)samples * in * sizeof(float)), *y = malloc((size_t)samples * out * sizeof(float));
    int requests = 0, rc = -1;
    api_error merged = {0};
    if (x && y) {
        size_t off = 0;
        for (item *it = batch; it; it = it->next, requests++) {
            memcpy(x + off * in, it->r->x, (size_t)it->r->n * in * sizeof(float));
            off += (size_t)it->r->n;
        }
        rc = b->run(first->ctx, instance, x, samples, y, &merged);
        if (b->observe) b->observe(b->observe_ctx, first->key, first->ctx, samples, requests, rc == 0);
    }
    if (rc == 0) {
        size_t off = 0;
        for (item *it = batch; it; it = it->next) {
            memcpy(it->r->out, y + off * out, (size_t)it->r->n * out * sizeof(float));
            off += (size_t)it->r->n;
            it->rc = 0;
        }
    } else {
        for (item *it = batch; it; it = it->next) run_alone(b, instance, it);
    }
    free(x);
    free(y);
}

/* The calling thread collects q: reserves an instance, waits for the batch
 * to fill or the head's delay to pass, takes whole requests from the head,
 * runs them and completes them. Called and returns with mu held. */
static void collect(batcher *b, queue *q, item *self) {
    q->collecting = true;
    int instance = b->free_instances[--b->n_free];
    const batch_request *head = q->head->r;
    int max = head->max_batch > 0 ? head->max_batch : 1;
    uint64_t deadline = q->head->t_submit + (uint64_t)(head->max_delay_us > 0 ? head->max_delay_us : 0);
    while (q->head && q->samples < max && batcher_now_us() < deadline) {
        struct timespec ts = to_timespec(deadline);
        pthread_cond_timedwait(&q->fill, &b->mu, &ts);
    }
    item *batch = NULL, **tail = &batch;
    int samples = 0;
    uint64_t now = batcher_now_us();
    while (q->head && (!samples || samples + q->head->r->n <= max)) {
        item *it = q->head;
        queue_remove(q, it);
        if (it->r->deadline_us && now >= it->r->deadline_us) { /* expired while the batch filled */
            it->done = true;
            it->rc = api_error_set(it->err, "queue_timeout", "the request waited in its batch queue past its timeout");
            if (it != self) pthread_cond_signal(&it->cv);
            continue;
        }
        it->taken = true;
        it->outcome.queue_us = (double)(now - it->t_submit);
        samples += it->r->n;
        *tail = it;
        tail = &it->next;
    }
    q->collecting = false;
    offer_collection(q, self);
    if (!batch) {
        b->free_instances[b->n_free++] = instance;
        offer_instance(b);
        return;
    }
    pthread_mutex_unlock(&b->mu);
    run_batch(b, instance, batch, samples);
    pthread_mutex_lock(&b->mu);
    b->free_instances[b->n_free++] = instance;
    offer_instance(b);
    for (item *it = batch, *next; it; it = next) {
        next = it->next;
        it->outcome.batch_samples = samples;
        it->done = true;
        if (it != self) pthread_cond_signal(&it->cv);
    }
}

int batcher_run(batcher *b, const batch_request *r, batch_outcome *outcome, api_error *err) {
    if (outcome) *outcome = (batch_outcome){0};
    if (!b || !r || !r->key || r->n < 1 || !r->x || !r->out)
        return api_error_set(err, "internal", "bad batch request");
    item it = {.r = r, .err = err, .t_submit = batcher_now_us(), .rc = -1};
    pthread_cond_init(&it.cv, &b->monotonic);
    atomic_fetch_add_explicit(&b->busy, 1, memory_order_relaxed);
    pthread_mutex_lock(&b->mu);
    queue *q = queue_get(b, r->key);
    if (!q) {
        pthread_mutex_unlock(&b->mu);
        atomic_fetch_sub_explicit(&b->busy, 1, memory_order_relaxed);
        pthread_cond_destroy(&it.cv);
        return api_error_set(err, "internal", "out of memory");
    }
    q->users++;
    if (q->tail) q->tail->next = &it;
    else q->head = &it;
    q->tail = &it;
    q->samples += r->n;
    if (q->collecting) pthread_cond_signal(&q->fill);
    while (!it.done) {
        if (!it.taken && r->deadline_us && batcher_now_us() >= r->deadline_us) {
            queue_remove(q, &it);
            it.done = true;
            it.rc = api_error_set(err, "queue_timeout", "the request waited in its batch queue past its timeout");
            break;
        }
        if (!it.taken && !q->collecting && b->n_free > 0 && q->head) {
            collect(b, q, &it);
            continue;
        }
        if (!it.taken && r->deadline_us) {
            struct timespec ts = to_timespec(r->deadline_us);
            pthread_cond_timedwait(&it.cv, &b->mu, &ts);
        } else {
            pthread_cond_wait(&it.cv, &b->mu);
        }
    }
    queue_put(b, q);
    pthread_mutex_unlock(&b->mu);
    atomic_fetch_sub_explicit(&b->busy, 1, memory_order_relaxed);
    pthread_cond_destroy(&it.cv);
    if (outcome) *outcome = it.outcome;
    return it.rc;
}
