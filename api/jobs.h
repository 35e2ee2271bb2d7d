/* Background jobs (replacement and calibration): a bounded queue, a few
 * runner threads that yield to inference, and records clients poll.
 *
 * A job is queued, then run by one of max_running threads; at most
 * max_running + queue_max jobs are queued or running, and more are refused. Runner
 * threads run at the lowest CPU priority with one OpenMP thread each, so
 * inference requests (the server's own threads) are scheduled first. A job
 * reports progress through its record and checks its cancel flag between
 * steps; a cancelled job writes nothing.
 *
 * Records live in memory only: after a restart the models that jobs wrote
 * are in the registry, but the job list starts empty. At most JOBS_KEPT
 * records are kept; the oldest finished ones are forgotten first. */
#ifndef MODA_API_JOBS_H
#define MODA_API_JOBS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "errors.h"

#define JOBS_KEPT 256
#define JOB_ID_LEN 24

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED } job_state;

const char *job_state_name(job_state s);

typedef struct job job;

/* The work: runs on a runner thread; returns 0 with *result (a JSON
 * object, stolen) or -1 with e set. It polls job_cancelled() and reports
 * with job_progress(). */
typedef int (*job_fn)(job *j, void *arg, json_t **result, api_error *e);

typedef struct job_progress_info {
    const char *phase;   /* static: "queued", "loading", "forward", "calibrating", "saving", "done" */
    int epoch, epochs;   /* calibration epochs, done and in all */
    long step, steps;    /* samples through the models, done and in all */
    double loss;         /* the last epoch's loss; NAN before */
    double images_per_s;
} job_progress_info;

typedef struct job_queue job_queue;

/* Start max_running runner threads; queue_max jobs may wait. NULL when out
 * of memory or a thread cannot start. */
job_queue *job_queue_new(int max_running, int queue_max);
/* Cancel every job, wait for the runners, free everything (arg_free is
 * called on each job's argument). Accepts NULL. */
void job_queue_free(job_queue *q);

/* Queue a job of `kind` ("replace", "calibrate") running fn(arg); request
 * (stolen) is echoed in the record. arg_free (may be NULL) frees arg when
 * the record goes. On success the new id is copied to id. Errors:
 * queue_full (429), internal. */
int job_submit(job_queue *q, const char *kind, json_t *request, job_fn fn, void *arg, void (*arg_free)(void *),
               char id[JOB_ID_LEN], api_error *e);

/* The record of job id as JSON (a new reference), or NULL: unknown_job. */
json_t *job_describe(job_queue *q, const char *id, api_error *e);
/* {"jobs": [...]} newest first. */
json_t *job_list(job_queue *q);
/* Cancel a queued or running job: its record (JSON) after the request, or
 * NULL with unknown_job, or job_finished (409) when it had ended. */
json_t *job_cancel(job_queue *q, const char *id, api_error *e);

/* For job functions. */
bool job_cancelled(const job *j);
void job_progress(job *j, const job_progress_info *p);
/* Only the phase (a static string), keeping the numbers. */
void job_phase(job *j, const char *phase);

#endif
