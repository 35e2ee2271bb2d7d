/* A bounded FIFO of jobs served by a fixed set of worker threads.
 *
 * Each worker has a fixed index (0..workers-1) that it passes to the job
 * function, so per-worker state (an engine backend, scratch buffers) can be
 * indexed without locks. The queue is a ring of job pointers allocated once:
 * pushing never allocates, and a full queue refuses the job instead of
 * growing. */
#ifndef MODA_WORKQ_H
#define MODA_WORKQ_H

#include <stdbool.h>

typedef struct workq workq;

/* Runs one job on worker `worker`; ctx as given to workq_new. */
typedef void (*workq_fn)(void *ctx, int worker, void *job);

/* Start `workers` threads serving a queue of at most `max_jobs` pending
 * jobs. NULL when out of memory, on bad sizes, or if a thread cannot start. */
workq *workq_new(int workers, int max_jobs, workq_fn fn, void *ctx);

/* Append a job; false when the queue is full or stopped (the caller keeps
 * the job). */
bool workq_push(workq *q, void *job);

/* Remove every job not yet started and hand each to reject(ctx, job) in FIFO
 * order, outside the queue's lock. Returns how many were removed. */
int workq_reject_pending(workq *q, void (*reject)(void *ctx, void *job), void *ctx);

/* Jobs waiting (not started). */
int workq_pending(workq *q);

/* Stop and join the workers: each finishes the job it is running; jobs still
 * pending are handed to reject (if not NULL) first. Accepts NULL. */
void workq_free(workq *q, void (*reject)(void *ctx, void *job), void *ctx);

#endif
