/* Worker threads over a ring of job pointers under one mutex: the jobs are
 * whole API calls (milliseconds), so a single lock is never the bottleneck. */
#include "workq.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct worker {
    workq *q;
    int index;
    pthread_t thread;
} worker;

struct workq {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on push and on stop */
    void **ring;       /* (cap) pending jobs, owned array; jobs not owned */
    int cap, head, count;
    bool stop;
    workq_fn fn;
    void *ctx;
    worker *workers; /* (n_workers), owned */
    int n_workers;   /* threads started */
};

static void *worker_main(void *arg) {
    worker *w = arg;
    workq *q = w->q;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->stop && q->count == 0) pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop) { /* pending jobs go to workq_free's reject */
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        void *job = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_mutex_unlock(&q->mu);
        q->fn(q->ctx, w->index, job);
    }
}

workq *workq_new(int workers, int max_jobs, workq_fn fn, void *ctx) {
    if (workers < 1 || max_jobs < 1 || !fn) return NULL;
    workq *q = calloc(1, sizeof(*q));
    if (!q) return NULL;
    q->ring = calloc((size_t)max_jobs, sizeof(*q->ring));
    q->workers = calloc((size_t)workers, sizeof(*q->workers));
    bool mu_ok = pthread_mutex_init(&q->mu, NULL) == 0;
    bool cv_ok = mu_ok && pthread_cond_init(&q->cv, NULL) == 0;
    if (!q->ring || !q->workers || !cv_ok) {
        if (cv_ok) pthread_cond_destroy(&q->cv);
        if (mu_ok) pthread_mutex_destroy(&q->mu);
        free(q->ring);
        free(q->workers);
        free(q);
        return NULL;
    }
    q->cap = max_jobs;
    q->fn = fn;
    q->ctx = ctx;
    for (int i = 0; i < workers; i++) {
        q->workers[i] = (worker){.q = q, .index = i};
        if (pthread_create(&q->workers[i].thread, NULL, worker_main, &q->workers[i]) != 0) {
            workq_free(q, NULL, NULL);
            return NULL;
        }
        q->n_workers++;
    }
    return q;
}

bool workq_push(workq *q, void *job) {
    pthread_mutex_lock(&q->mu);
    bool ok = !q->stop && q->count < q->cap;
    if (ok) {
        q->ring[(q->head + q->count) % q->cap] = job;
        q->count++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

int workq_pending(workq *q) {
    pthread_mutex_lock(&q->mu);
    int n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

int workq_reject_pending(workq *q, void (*reject)(void *ctx, void *job), void *ctx) {
    int total = 0;
    /* Batches through a small local array so reject runs without the lock
     * (it may take other locks or wake other threads). */
    for (;;) {
        void *batch[64];
        int n = 0;
        pthread_mutex_lock(&q->mu);
        while (n < 64 && q->count > 0) {
            batch[n++] = q->ring[q->head];
            q->head = (q->head + 1) % q->cap;
            q->count--;
        }
        pthread_mutex_unlock(&q->mu);
        for (int i = 0; i < n; i++)
            if (reject) reject(ctx, batch[i]);
        total += n;
        if (n < 64) return total;
    }
}

void workq_free(workq *q, void (*reject)(void *ctx, void *job), void *ctx) {
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    /* Pending jobs are rejected, not run: a stopping queue does no new work. */
    workq_reject_pending(q, reject, ctx);
    for (int i = 0; i < q->n_workers; i++) pthread_join(q->workers[i].thread, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->ring);
    free(q->workers);
    free(q);
}
