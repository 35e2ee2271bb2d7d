/* moda-server's defaults and command line: "--name value", "--name=value",
 * bare "--flag" for booleans; sizes take binary suffixes (K, M, G, T). */
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backend.h"
#include "server.h"

#define PROG "moda-server"

static int cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (int)n : 1;
}

server_config server_config_default(void) {
    return (server_config){
        .host = "127.0.0.1",
        .port = 8080,
        .threads = cores(),
        .max_body = (size_t)64 << 20,
        .conn_timeout_s = 30,
        .drain_seconds = 30,
        .queue_max = 1024,
        .log = stderr,
        .api =
            {
                .registry = "models",
                .cache_bytes = (size_t)256 << 20,
                .workers = cores(),
                .intra_threads = 1,
                .max_classes = 0,
                .max_batch = 1024,
                .default_tau = 0.9f,
                .device = "auto",
                .batching = {.max_batch = 1, .max_delay_us = 0, .instances = cores()},
                .jobs_max = 1,
                .jobs_queue = 4,
            },
    };
}

typedef enum opt_type { OPT_STRING, OPT_INT, OPT_SIZE, OPT_FLOAT, OPT_BOOL, OPT_BATCH_MODEL } opt_type;

typedef struct opt_spec {
    const char *name; /* without "--" */
    opt_type type;
    void *value;      /* const char **, int *, size_t *, float *, bool * */
    double min, max;  /* accepted range (numbers) */
    const char *meta; /* e.g. "N"; NULL for booleans */
    const char *help; /* ends with the default in parentheses */
} opt_spec;

/* "256M" -> 268435456. Suffixes K, M, G, T (powers of 1024), optionally
 * followed by "B" or "iB"; case-insensitive. */
static bool parse_size(const char *text, size_t *out) {
    if (!text[0] || text[0] == '-' || text[0] == '+') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text) return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: break;
    }
    if (shift) {
        end++;
        if (!strcasecmp(end, "ib") || !strcasecmp(end, "b")) end += strlen(end);
    } else if (!strcasecmp(end, "b")) {
        end++;
    }
    if (*end) return false;
    if (v > (SIZE_MAX >> shift)) return false;
    *out = (size_t)(v << shift);
    return true;
}

static bool parse_value(const opt_spec *o, const char *text) {
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case OPT_STRING:
        if (!text[0]) break;
        *(const char **)o->value = text;
        return true;
    case OPT_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < (long)o->min || v > (long)o->max) break;
        *(int *)o->value = (int)v;
        return true;
    }
    case OPT_SIZE: {
        size_t v;
        if (!parse_size(text, &v) || (double)v < o->min) break;
        *(size_t *)o->value = v;
        return true;
    }
    case OPT_FLOAT: {
        float v = strtof(text, &end);
        if (errno || end == text || *end || !isfinite(v) || v < o->min || v > o->max) break;
        *(float *)o->value = v;
        return true;
    }
    case OPT_BATCH_MODEL: {
        /* NAME=MAX or NAME=MAX:DELAY_US; a later one for a name wins. */
        api_batching *b = o->value;
        const char *eq = strrchr(text, '=');
        if (!eq || eq == text || b->n_overrides == API_BATCH_OVERRIDES_MAX) break;
        long max = strtol(eq + 1, &end, 10), delay = 0;
        if (errno || end == eq + 1 || max < 1 || max > 1 << 16) break;
        if (*end == ':') {
            const char *d = end + 1;
            delay = strtol(d, &end, 10);
            if (errno || end == d || delay < 0 || delay > 10000000) break;
        }
        if (*end) break;
        api_batch_override *ov = &b->overrides[b->n_overrides];
        if ((size_t)(eq - text) >= sizeof ov->model) break;
        snprintf(ov->model, sizeof ov->model, "%.*s", (int)(eq - text), text);
        ov->max_batch = (int)max;
        ov->max_delay_us = (int)delay;
        b->n_overrides++;
        return true;
    }
    case OPT_BOOL:
        break;
    }
    fprintf(stderr, PROG ": invalid value '%s' for --%s\n", text, o->name);
    return false;
}

/* The admin token: the file's first line, without surrounding white
 * space; printable ASCII, not empty. Nonzero with a message otherwise. */
static int read_token(const char *path, char *out, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, PROG ": --admin-token-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = fgets(out, (int)size, f);
    fclose(f);
    size_t n = line ? strlen(out) : 0;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' || out[n - 1] == '\t')) out[--n] = '\0';
    size_t start = strspn(out, " \t");
    memmove(out, out + start, n - start + 1);
    bool ok = out[0] != '\0';
    for (const char *c = out; ok && *c; c++) ok = *c > ' ' && *c < 127;
    if (!ok) {
        fprintf(stderr, PROG ": --admin-token-file %s: the first line must hold the token (printable, no spaces)\n",
                path);
        return -1;
    }
    return 0;
}

static void print_usage(FILE *f, const opt_spec *specs, int n) {
    fprintf(f, "usage: " PROG " [options]\n\n"
               "Serves a module registry over HTTP: composes class subsets of its models\n"
               "(cached, LRU bounded in bytes) and runs inference on them; /v1 routes, the\n"
               "Open Inference Protocol v2 under /v2, Prometheus metrics at /metrics.\n"
               "SIGHUP reloads the registry; SIGTERM or SIGINT shut it down gracefully.\n\noptions:\n");
    for (int k = 0; k < n; k++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", specs[k].name, specs[k].meta ? " " : "",
                 specs[k].meta ? specs[k].meta : "");
        fprintf(f, "  %-22s %s\n", left, specs[k].help);
    }
    fprintf(f, "  %-22s %s\n", "--help", "this text");
}

int server_config_parse(int argc, char **argv, server_config *cfg) {
    *cfg = server_config_default();
    /* Images and orchestrators name the registry in the environment; a
     * --registry on the command line still wins. */
    const char *env_registry = getenv("MODA_REGISTRY");
    if (env_registry && env_registry[0]) cfg->api.registry = env_registry;
    /* The rest of the environment the docs name, read here once: the
     * libraries below read none. */
    cfg->api.remote = registry_remote_options_from(getenv);
    cfg->api.backend = backend_options_from(getenv);
    char threads_help[80], workers_help[80], instances_help[96];
    snprintf(instances_help, sizeof instances_help, "dynamic batching: merged engine calls at once (cores: %d)",
             cfg->api.batching.instances);
    snprintf(threads_help, sizeof threads_help, "connection threads; they run light requests (cores: %d)", cfg->threads);
    snprintf(workers_help, sizeof workers_help, "inference worker threads (cores: %d)", cfg->api.workers);
    const opt_spec specs[] = {
        {"registry", OPT_STRING, &cfg->api.registry, 0, 0, "DIR|URL", "registry to serve, a directory or http(s) URL ($MODA_REGISTRY, else models)"},
        {"host", OPT_STRING, &cfg->host, 0, 0, "ADDR", "address to bind; 0.0.0.0 or :: for all (127.0.0.1)"},
        {"port", OPT_INT, &cfg->port, 0, 65535, "N", "TCP port; 0 picks a free one (8080)"},
        {"threads", OPT_INT, &cfg->threads, 1, 1024, "N", threads_help},
        {"workers", OPT_INT, &cfg->api.workers, 1, 1024, "N", workers_help},
        {"intra-threads", OPT_INT, &cfg->api.intra_threads, 1, 1024, "N", "OpenMP threads in each worker's ops (1)"},
        {"cache-bytes", OPT_SIZE, &cfg->api.cache_bytes, 1, 0, "SIZE", "composed-model cache budget, e.g. 512M (256M)"},
        {"max-body", OPT_SIZE, &cfg->max_body, 1, 0, "SIZE", "request body limit; larger bodies get 413 (64M)"},
        {"max-classes", OPT_INT, &cfg->api.max_classes, 0, 1 << 20, "N", "classes per compose request; 0 = all (0)"},
        {"max-batch", OPT_INT, &cfg->api.max_batch, 1, 1 << 24, "N", "samples per inference request (1024)"},
        {"device", OPT_STRING, &cfg->api.device, 0, 0, "D", "cpu, cuda, or auto: the GPU when there is one (auto)"},
        {"tau", OPT_FLOAT, &cfg->api.default_tau, 0, 1, "T", "module threshold when a request gives none (0.9)"},
        {"timeout", OPT_INT, &cfg->conn_timeout_s, 0, 86400, "S", "idle connection timeout in seconds; 0 = none (30)"},
        {"drain-seconds", OPT_INT, &cfg->drain_seconds, 0, 86400, "S", "on shutdown, wait this long for requests (30)"},
        {"batch-max", OPT_INT, &cfg->api.batching.max_batch, 1, 1 << 16, "N",
         "dynamic batching: samples merged into one engine call; 1 = off (1)"},
        {"batch-delay-us", OPT_INT, &cfg->api.batching.max_delay_us, 0, 10000000, "US",
         "dynamic batching: how long a batch may wait to fill (0)"},
        {"batch-instances", OPT_INT, &cfg->api.batching.instances, 1, 1024, "N", instances_help},
        {"batch-timeout-us", OPT_INT, &cfg->api.batching.timeout_us, 0, 1 << 30, "US",
         "a request still queued for a batch after this long gets 503; 0 = never (0)"},
        {"batch-model", OPT_BATCH_MODEL, &cfg->api.batching, 0, 0, "M=N[:US]",
         "per registry model: batch-max N and batch-delay-us US (repeatable)"},
        {"queue-max", OPT_INT, &cfg->queue_max, 1, 1 << 24, "N", "requests waiting for a worker before 503 (1024)"},
        {"jobs-max", OPT_INT, &cfg->api.jobs_max, 1, 64, "N", "replacement jobs running at once (1)"},
        {"jobs-queue", OPT_INT, &cfg->api.jobs_queue, 0, 4096, "N", "jobs waiting beyond those; more get 429 (4)"},
        {"data", OPT_STRING, &cfg->api.data_dirs, 0, 0, "KIND=DIR,..", "where jobs read a dataset kind (models' records)"},
        {"registry-poll", OPT_INT, &cfg->api.registry_poll_s, 0, 86400, "S",
         "reload the registry every S seconds, e.g. from a URL (0: only on SIGHUP or POST /v1/registry/reload)"},
        {"admin-token-file", OPT_STRING, &cfg->admin_token_file, 0, 0, "FILE",
         "replace, calibrate, cancel and uncache need this bearer token (none)"},
        {"quiet", OPT_BOOL, &cfg->quiet, 0, 0, NULL, "no log line per request"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout, specs, n);
            return 1;
        }
        const opt_spec *o = NULL;
        const char *name = a + 2, *eq = NULL;
        if (!strncmp(a, "--", 2) && a[2]) {
            eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (int k = 0; k < n; k++)
                if (strlen(specs[k].name) == len && !strncmp(specs[k].name, name, len)) o = &specs[k];
        }
        if (!o) {
            fprintf(stderr, PROG ": unknown option '%s'\n\n", a);
            print_usage(stderr, specs, n);
            return 2;
        }
        if (o->type == OPT_BOOL) {
            if (eq) {
                fprintf(stderr, PROG ": --%s takes no value\n\n", o->name);
                print_usage(stderr, specs, n);
                return 2;
            }
            *(bool *)o->value = true;
            continue;
        }
        const char *text = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!text) {
            fprintf(stderr, PROG ": --%s needs a value\n\n", o->name);
            print_usage(stderr, specs, n);
            return 2;
        }
        if (!parse_value(o, text)) {
            fputc('\n', stderr);
            print_usage(stderr, specs, n);
            return 2;
        }
    }
    if (cfg->admin_token_file && read_token(cfg->admin_token_file, cfg->admin_token, sizeof cfg->admin_token))
        return 2;
    if (cfg->admin_token_file) cfg->api.admin_token = cfg->admin_token;
    if (!backend_name_known(cfg->api.device)) {
        fprintf(stderr, PROG ": unknown --device '%s' (expected cpu, cuda or auto)\n", cfg->api.device);
        return 2;
    }
    return 0;
}
