/* Metric series in a small table under one mutex: a few dozen series at
 * most (one per model and reason), each update a short critical section. */
#include "metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_MAX 160

typedef struct series {
    metric_id id;
    char model[LABEL_MAX];
    char reason[64];
    double value;
} series;

struct metrics {
    pthread_mutex_t mu;
    series *s; /* (n), owned */
    int n, cap;
};

static const struct {
    const char *name, *help;
    bool gauge;
} defs[METRIC_COUNT_] = {
    [METRIC_REQUEST_SUCCESS] = {"moda_inference_request_success", "Number of successful inference requests", false},
    [METRIC_REQUEST_FAILURE] = {"moda_inference_request_failure", "Number of failed inference requests, by reason", false},
    [METRIC_INFERENCE_COUNT] = {"moda_inference_count", "Number of samples inferred", false},
    [METRIC_EXEC_COUNT] = {"moda_inference_exec_count", "Number of model executions (forward passes) performed", false},
    [METRIC_REQUEST_DURATION_US] = {"moda_inference_request_duration_us", "Cumulative inference request duration in microseconds", false},
    [METRIC_QUEUE_DURATION_US] = {"moda_inference_queue_duration_us", "Cumulative time inference requests waited for a worker in microseconds", false},
    [METRIC_COMPUTE_DURATION_US] = {"moda_inference_compute_infer_duration_us", "Cumulative model execution time in microseconds", false},
    [METRIC_COMPOSE_COUNT] = {"moda_compose_count", "Number of compositions run (cache misses that composed)", false},
    [METRIC_COMPOSE_DURATION_US] = {"moda_compose_duration_us", "Cumulative composition time in microseconds", false},
    [METRIC_CACHE_HIT] = {"moda_cache_hit_count", "Composed-model cache hits", false},
    [METRIC_CACHE_MISS] = {"moda_cache_miss_count", "Composed-model cache misses", false},
    [METRIC_CACHE_EVICTION] = {"moda_cache_eviction_count", "Composed models evicted from the cache", false},
    [METRIC_REGISTRY_RELOAD] = {"moda_registry_reload_count", "Registry reloads that took effect", false},
    [METRIC_REGISTRY_RELOAD_FAILURE] = {"moda_registry_reload_failure_count",
                                        "Registry reloads refused: the old registry kept serving", false},
    [METRIC_CACHE_BYTES_USED] = {"moda_cache_bytes_used", "Bytes held by cached composed models", true},
    [METRIC_CACHE_BYTES_LIMIT] = {"moda_cache_bytes_limit", "Byte budget of the composed-model cache", true},
};

metrics *metrics_new(void) {
    metrics *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->s);
    free(m);
}

/* The series for (id, model, reason), created at 0 if absent; NULL when
 * out of memory. Caller holds the mutex. */
static series *find(metrics *m, metric_id id, const char *model, const char *reason, bool create) {
    if (!model) model = "";
    if (!reason) reason = "";
    for (int i = 0; i < m->n; i++)
        if (m->s[i].id == id && !strcmp(m->s[i].model, model) && !strcmp(m->s[i].reason, reason)) return &m->s[i];
    if (!create) return NULL;
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 32;
        series *s = realloc(m->s, (size_t)cap * sizeof(*s));
        if (!s) return NULL;
        m->s = s;
        m->cap = cap;
    }
    series *s = &m->s[m->n++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    snprintf(s->model, sizeof(s->model), "%s", model);
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    return s;
}

void metrics_add(metrics *m, metric_id id, const char *model, const char *reason, double delta) {
    if (!m || id < 0 || id >= METRIC_COUNT_) return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, id, model, id == METRIC_REQUEST_FAILURE ? reason : NULL, true);
    if (s) s->value += delta;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set(metrics *m, metric_id id, const char *model, double value) {
    if (!m || id < 0 || id >= METRIC_COUNT_) return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, id, model, NULL, true);
    if (s) s->value = value;
    pthread_mutex_unlock(&m->mu);
}

double metrics_get(metrics *m, metric_id id, const char *model, const char *reason) {
    if (!m || id < 0 || id >= METRIC_COUNT_) return 0.0;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, id, model, reason, false);
    double v = s ? s->value : 0.0;
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* Label values escape backslash, double quote and newline. */
static void put_label(FILE *f, const char *key, const char *v) {
    fprintf(f, "%s=\"", key);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') fputc('\\', f);
        if (*v == '\n') {
            fputs("\\n", f);
            continue;
        }
        fputc(*v, f);
    }
    fputc('"', f);
}

char *metrics_render(metrics *m) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    if (m) pthread_mutex_lock(&m->mu);
    for (int id = 0; id < METRIC_COUNT_; id++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", defs[id].name, defs[id].help, defs[id].name,
                defs[id].gauge ? "gauge" : "counter");
        for (int i = 0; m && i < m->n; i++) {
            const series *s = &m->s[i];
            if ((int)s->id != id) continue;
            fprintf(f, "%s{", defs[id].name);
            put_label(f, "model", s->model);
            if (id == METRIC_REQUEST_FAILURE) {
                fputc(',', f);
                put_label(f, "reason", s->reason);
            }
            fprintf(f, "} %.17g\n", s->value);
        }
    }
    if (m) pthread_mutex_unlock(&m->mu);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
