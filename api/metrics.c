/* Metric series in a small table under one mutex: a few dozen series at
 * most (one per model and reason), each update a short critical section. */
#include "metrics.h"

#include <math.h>
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

#define BUCKETS_MAX 20

typedef struct histogram_series {
    histogram_id id;
    char label[LABEL_MAX];
    double count, sum;
    double buckets[BUCKETS_MAX]; /* observations <= the bound, not cumulative */
} histogram_series;

struct metrics {
    pthread_mutex_t mu;
    series *s; /* (n), owned */
    int n, cap;
    histogram_series *h; /* (nh), owned */
    int nh, hcap;
};

/* Latencies from 100 µs (a LeNet5 pass) to 10 s; batch sizes in powers of
 * two up to the largest batch a handle plans. */
static const double SECONDS_BOUNDS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5, 10};
static const double SIZE_BOUNDS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

static const struct {
    const char *name, *help, *label;
    const double *bounds;
    int n_bounds;
} hdefs[HISTOGRAM_COUNT_] = {
    [HISTOGRAM_HTTP_SECONDS] = {"moda_http_request_duration_seconds",
                                "HTTP request duration from receipt to response, by route", "route", SECONDS_BOUNDS,
                                (int)(sizeof SECONDS_BOUNDS / sizeof SECONDS_BOUNDS[0])},
    [HISTOGRAM_INFERENCE_SECONDS] = {"moda_inference_duration_seconds",
                                     "Inference request duration from receipt to response, by model", "model",
                                     SECONDS_BOUNDS, (int)(sizeof SECONDS_BOUNDS / sizeof SECONDS_BOUNDS[0])},
    [HISTOGRAM_BATCH_SIZE] = {"moda_batch_size", "Samples per merged engine call of the dynamic batcher", "model",
                              SIZE_BOUNDS, (int)(sizeof SIZE_BOUNDS / sizeof SIZE_BOUNDS[0])},
    [HISTOGRAM_BATCH_QUEUE_SECONDS] = {"moda_batch_queue_duration_seconds",
                                       "Time an inference request waited in its model's batch queue", "model",
                                       SECONDS_BOUNDS, (int)(sizeof SECONDS_BOUNDS / sizeof SECONDS_BOUNDS[0])},
};

static const struct {
    const char *name, *help;
    bool gauge;
} defs[METRIC_COUNT_] = {
    [METRIC_REQUEST_SUCCESS] = {"moda_inference_request_success", "Number of successful inference requests", false},
    [METRIC_REQUEST_FAILURE] = {"moda_inference_request_failure", "Number of failed inference requests, by reason", false},
    [METRIC_INFERENCE_COUNT] = {"moda_inference_count", "Number of samples inferred", false},
    [METRIC_EXEC_COUNT] = {"moda_inference_exec_count", "Number of model executions (forward passes) performed", false},
    [METRIC_REQUEST_DURATION_US] = {"moda_inference_request_duration_us", "Cumulative duration of successful inference requests in microseconds", false},
    [METRIC_REQUEST_FAILURE_DURATION_US] = {"moda_inference_request_failure_duration_us", "Cumulative duration of failed inference requests in microseconds", false},
    [METRIC_QUEUE_DURATION_US] = {"moda_inference_queue_duration_us", "Cumulative time successful inference requests waited for a worker or a batch in microseconds", false},
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
    free(m->h);
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

double metrics_total(metrics *m, metric_id id, const char *model) {
    if (!m || id < 0 || id >= METRIC_COUNT_) return 0.0;
    if (!model) model = "";
    double v = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++)
        if (m->s[i].id == id && !strcmp(m->s[i].model, model)) v += m->s[i].value;
    pthread_mutex_unlock(&m->mu);
    return v;
}

void metrics_each_model(metrics *m, void (*fn)(void *ctx, const char *model), void *ctx) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    int n = 0;
    char(*labels)[LABEL_MAX] = m->n ? malloc((size_t)m->n * LABEL_MAX) : NULL;
    for (int i = 0; labels && i < m->n; i++) {
        if (!m->s[i].model[0]) continue;
        bool seen = false;
        for (int j = 0; j < n && !seen; j++) seen = !strcmp(labels[j], m->s[i].model);
        if (!seen) memcpy(labels[n++], m->s[i].model, LABEL_MAX);
    }
    pthread_mutex_unlock(&m->mu);
    for (int j = 0; j < n; j++) fn(ctx, labels[j]);
    free(labels);
}

/* The histogram series for (id, label), created empty if absent; NULL when
 * out of memory or absent. Caller holds the mutex. */
static histogram_series *hfind(metrics *m, histogram_id id, const char *label, bool create) {
    if (!label) label = "";
    for (int i = 0; i < m->nh; i++)
        if (m->h[i].id == id && !strcmp(m->h[i].label, label)) return &m->h[i];
    if (!create) return NULL;
    if (m->nh == m->hcap) {
        int cap = m->hcap ? 2 * m->hcap : 16;
        histogram_series *h = realloc(m->h, (size_t)cap * sizeof(*h));
        if (!h) return NULL;
        m->h = h;
        m->hcap = cap;
    }
    histogram_series *h = &m->h[m->nh++];
    memset(h, 0, sizeof(*h));
    h->id = id;
    snprintf(h->label, sizeof h->label, "%s", label);
    return h;
}

void metrics_observe(metrics *m, histogram_id id, const char *label, double value) {
    if (!m || id < 0 || id >= HISTOGRAM_COUNT_ || isnan(value)) return;
    pthread_mutex_lock(&m->mu);
    histogram_series *h = hfind(m, id, label, true);
    if (h) {
        h->count += 1;
        h->sum += value;
        for (int b = 0; b < hdefs[id].n_bounds; b++)
            if (value <= hdefs[id].bounds[b]) {
                h->buckets[b] += 1;
                break;
            }
    }
    pthread_mutex_unlock(&m->mu);
}

double metrics_histogram_count(metrics *m, histogram_id id, const char *label, double le) {
    if (!m || id < 0 || id >= HISTOGRAM_COUNT_) return 0.0;
    pthread_mutex_lock(&m->mu);
    histogram_series *h = hfind(m, id, label, false);
    double v = 0;
    if (h && le == INFINITY) v = h->count;
    for (int b = 0; h && le != INFINITY && b < hdefs[id].n_bounds && hdefs[id].bounds[b] <= le; b++)
        v += h->buckets[b];
    pthread_mutex_unlock(&m->mu);
    return v;
}

double metrics_histogram_sum(metrics *m, histogram_id id, const char *label) {
    if (!m || id < 0 || id >= HISTOGRAM_COUNT_) return 0.0;
    pthread_mutex_lock(&m->mu);
    histogram_series *h = hfind(m, id, label, false);
    double v = h ? h->sum : 0.0;
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
    for (int id = 0; id < HISTOGRAM_COUNT_; id++) {
        const char *name = hdefs[id].name;
        fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, hdefs[id].help, name);
        for (int i = 0; m && i < m->nh; i++) {
            const histogram_series *h = &m->h[i];
            if ((int)h->id != id) continue;
            double cumulative = 0;
            for (int b = 0; b <= hdefs[id].n_bounds; b++) {
                cumulative = b < hdefs[id].n_bounds ? cumulative + h->buckets[b] : h->count;
                fprintf(f, "%s_bucket{", name);
                put_label(f, hdefs[id].label, h->label);
                if (b < hdefs[id].n_bounds) fprintf(f, ",le=\"%g\"} %.17g\n", hdefs[id].bounds[b], cumulative);
                else fprintf(f, ",le=\"+Inf\"} %.17g\n", cumulative);
            }
            fprintf(f, "%s_sum{", name);
            put_label(f, hdefs[id].label, h->label);
            fprintf(f, "} %.17g\n%s_count{", h->sum, name);
            put_label(f, hdefs[id].label, h->label);
            fprintf(f, "} %.17g\n", h->count);
        }
    }
    if (m) pthread_mutex_unlock(&m->mu);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
