/* The job queue (jobs.h). One mutex guards every record; job functions
 * write their progress under it and read their cancel flag (atomic)
 * without it. */
#define _GNU_SOURCE /* gettid(), for a runner thread's own priority */
#include "jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct job {
    job_queue *q; /* its queue, whose lock guards the record */
    char id[JOB_ID_LEN];
    char kind[16];
    json_t *request; /* owned */
    job_fn fn;
    void *arg;
    void (*arg_free)(void *);
    job_state state;
    atomic_bool cancel;
    job_progress_info progress;
    double created, started, finished; /* Unix time, seconds; 0: not yet */
    json_t *result;                    /* owned, once succeeded */
    api_error error;                   /* once failed */
};

struct job_queue {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    job *jobs[JOBS_KEPT]; /* oldest first; NULL-free prefix of n */
    int n;
    int queued, running, queue_max;
    unsigned long next_id;
    unsigned salt;
    bool stop;
    pthread_t *runners;
    int n_runners;
};

const char *job_state_name(job_state s) {
    switch (s) {
    case JOB_QUEUED: return "queued";
    case JOB_RUNNING: return "running";
    case JOB_SUCCEEDED: return "succeeded";
    case JOB_FAILED: return "failed";
    case JOB_CANCELLED: return "cancelled";
    }
    return "unknown";
}

static double unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void job_free(job *j) {
    if (!j) return;
    json_decref(j->request);
    json_decref(j->result);
    if (j->arg_free) j->arg_free(j->arg);
    free(j);
}

/* The oldest queued job, or NULL. Under the lock. */
static job *next_queued(job_queue *q) {
    for (int i = 0; i < q->n; i++)
        if (q->jobs[i]->state == JOB_QUEUED) return q->jobs[i];
    return NULL;
}

static void *runner(void *arg) {
    job_queue *q = arg;
    /* Inference first: this thread (and what it starts) at the lowest
     * priority. Failure leaves it at the default, which is only slower for
     * inference under a job. */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        job *j;
        while (!q->stop && !(j = next_queued(q))) pthread_cond_wait(&q->wake, &q->mu);
        if (q->stop) break;
        j->state = JOB_RUNNING;
        j->started = unix_now();
        q->queued--;
        q->running++;
        pthread_mutex_unlock(&q->mu);
        json_t *result = NULL;
        api_error e = {0};
        int rc = j->fn(j, j->arg, &result, &e);
        pthread_mutex_lock(&q->mu);
        j->finished = unix_now();
        q->running--;
        if (rc == 0) {
            j->state = JOB_SUCCEEDED;
            j->progress.phase = "done";
            j->result = result;
        } else {
            json_decref(result);
            j->state = atomic_load(&j->cancel) ? JOB_CANCELLED : JOB_FAILED;
            j->error = e;
            if (!j->error.code) api_error_set(&j->error, "internal", "the job failed without a reason");
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

job_queue *job_queue_new(int max_running, int queue_max) {
    if (max_running < 1 || queue_max < 0) return NULL;
    job_queue *q = calloc(1, sizeof(*q));
    if (!q) return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->wake, NULL);
    q->queue_max = queue_max;
    q->salt = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    q->runners = calloc((size_t)max_running, sizeof(pthread_t));
    if (!q->runners) {
        job_queue_free(q);
        return NULL;
    }
    for (int i = 0; i < max_running; i++) {
        if (pthread_create(&q->runners[i], NULL, runner, q) != 0) {
            job_queue_free(q);
            return NULL;
        }
        q->n_runners++;
    }
    return q;
}

void job_queue_free(job_queue *q) {
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    for (int i = 0; i < q->n; i++) atomic_store(&q->jobs[i]->cancel, true);
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->n_runners; i++) pthread_join(q->runners[i], NULL);
    for (int i = 0; i < q->n; i++) job_free(q->jobs[i]);
    free(q->runners);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* Room for one more record: forget the oldest finished one when full.
 * Under the lock; false when every kept record is queued or running. */
static bool make_room(job_queue *q) {
    if (q->n < JOBS_KEPT) return true;
    for (int i = 0; i < q->n; i++) {
        job_state s = q->jobs[i]->state;
        if (s == JOB_QUEUED || s == JOB_RUNNING) continue;
        job_free(q->jobs[i]);
        memmove(&q->jobs[i], &q->jobs[i + 1], (size_t)(q->n - i - 1) * sizeof(job *));
        q->n--;
        return true;
    }
    return false;
}

int job_submit(job_queue *q, const char *kind, json_t *request, job_fn fn, void *arg, void (*arg_free)(void *),
               char id[JOB_ID_LEN], api_error *e) {
    job *j = calloc(1, sizeof(*j));
    if (!j) {
        json_decref(request);
        if (arg_free) arg_free(arg);
        return api_error_set(e, "internal", "out of memory");
    }
    snprintf(j->kind, sizeof j->kind, "%s", kind);
    j->q = q;
    j->request = request;
    j->fn = fn;
    j->arg = arg;
    j->arg_free = arg_free;
    j->progress.phase = "queued";
    j->progress.loss = NAN;
    j->created = unix_now();
    pthread_mutex_lock(&q->mu);
    /* Room: a free runner, or a place in the queue behind the busy ones. */
    if (q->queued + q->running >= q->n_runners + q->queue_max || !make_room(q)) {
        int running = q->running, waiting = q->queued;
        pthread_mutex_unlock(&q->mu);
        job_free(j);
        return api_error_set(e, "queue_full", "%d job(s) running and %d waiting; try again later", running, waiting);
    }
    snprintf(j->id, sizeof j->id, "%08x-%lu", q->salt, ++q->next_id);
    q->jobs[q->n++] = j;
    q->queued++;
    memcpy(id, j->id, JOB_ID_LEN);
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static job *find(job_queue *q, const char *id) {
    for (int i = 0; id && i < q->n; i++)
        if (!strcmp(q->jobs[i]->id, id)) return q->jobs[i];
    return NULL;
}

/* RFC 3339, UTC, milliseconds. */
static json_t *timestamp(double t) {
    time_t sec = (time_t)t;
    struct tm tm;
    char buf[40];
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)((t - (double)sec) * 1000) % 1000);
    return json_string(buf);
}

/* Under the lock. */
static json_t *describe(const job *j) {
    const job_progress_info *p = &j->progress;
    json_t *prog = json_pack("{s:s,s:i,s:i,s:I,s:I,s:f}", "phase", p->phase, "epoch", p->epoch, "epochs", p->epochs,
                             "step", (json_int_t)p->step, "steps", (json_int_t)p->steps, "images_per_s",
                             p->images_per_s);
    if (prog && isfinite(p->loss)) json_object_set_new(prog, "loss", json_real(p->loss));
    if (prog && j->state == JOB_RUNNING && p->steps > 0 && p->images_per_s > 0)
        json_object_set_new(prog, "eta_s", json_real((double)(p->steps - p->step) / p->images_per_s));
    json_t *o = json_pack("{s:s,s:s,s:s,s:O,s:o,s:o}", "id", j->id, "kind", j->kind, "state",
                          job_state_name(j->state), "request", j->request, "created", timestamp(j->created),
                          "progress", prog);
    if (!o) return NULL;
    if (j->started > 0) json_object_set_new(o, "started", timestamp(j->started));
    if (j->finished > 0) json_object_set_new(o, "finished", timestamp(j->finished));
    if (j->result) json_object_set(o, "result", j->result);
    if (j->state == JOB_FAILED || j->state == JOB_CANCELLED)
        json_object_set_new(o, "error", json_pack("{s:s,s:s}", "code", j->error.code ? j->error.code : "cancelled",
                                                  "message", j->error.message));
    return o;
}

json_t *job_describe(job_queue *q, const char *id, api_error *e) {
    pthread_mutex_lock(&q->mu);
    job *j = find(q, id);
    json_t *o = j ? describe(j) : NULL;
    pthread_mutex_unlock(&q->mu);
    if (!j) api_error_set(e, "unknown_job", "no job \"%.40s\" (job records are kept in memory only)", id);
    else if (!o) api_error_set(e, "internal", "out of memory");
    return o;
}

json_t *job_list(job_queue *q) {
    json_t *arr = json_array();
    pthread_mutex_lock(&q->mu);
    for (int i = q->n - 1; arr && i >= 0; i--) json_array_append_new(arr, describe(q->jobs[i]));
    pthread_mutex_unlock(&q->mu);
    return json_pack("{s:o}", "jobs", arr);
}

json_t *job_cancel(job_queue *q, const char *id, api_error *e) {
    pthread_mutex_lock(&q->mu);
    job *j = find(q, id);
    json_t *o = NULL;
    if (!j) {
        api_error_set(e, "unknown_job", "no job \"%.40s\"", id);
    } else if (j->state != JOB_QUEUED && j->state != JOB_RUNNING) {
        api_error_set(e, "job_finished", "job %s has already %s", j->id, job_state_name(j->state));
    } else {
        atomic_store(&j->cancel, true);
        if (j->state == JOB_QUEUED) { /* never started: nothing to undo */
            j->state = JOB_CANCELLED;
            j->finished = unix_now();
            q->queued--;
            api_error_set(&j->error, "cancelled", "cancelled before it started");
        }
        if (!(o = describe(j))) api_error_set(e, "internal", "out of memory");
    }
    pthread_mutex_unlock(&q->mu);
    return o;
}

bool job_cancelled(const job *j) { return atomic_load(&((job *)j)->cancel); }

void job_progress(job *j, const job_progress_info *p) {
    pthread_mutex_lock(&j->q->mu);
    j->progress = *p;
    pthread_mutex_unlock(&j->q->mu);
}

void job_phase(job *j, const char *phase) {
    pthread_mutex_lock(&j->q->mu);
    j->progress.phase = phase;
    pthread_mutex_unlock(&j->q->mu);
}
