/* Inference latency and throughput of frozen plans (engine/frozen.h), and of
 * the unfrozen eval-mode graph for comparison, on the CPU backend.
 *
 * A model is ARCH:WIDTH, or ARCH:WIDTH:cK for a model composed from it for
 * K classes (K 2: classes 3,8; K 5: 0,2,4,6,9) with synthetic rates
 * (uniform in [0, 1], seeded) at tau 0.9, as bench_compose does. Weights
 * are the reference initialisation (seed 1) with batch-norm statistics and
 * affines drawn at random, so that folding them changes something; the
 * same model comes out of every run.
 *
 * Each (model, engine, batch, threads) is warmed up, then timed call by
 * call for about --time seconds (at least 5 calls); one JSON line each with
 * the median, the fastest and the slowest call in ms, and the model's MACs
 * per sample (and its parent's, for a composed model).
 *
 * --export DIR writes DIR/NAME.safetensors for the PyTorch and ONNX Runtime
 * peers (bench/infer_torch.py): every parameter under its graph name, the
 * graph's nodes as JSON in the metadata key "graph" (the registry
 * manifest's node format), and "__input__" (2 samples) with the frozen
 * plan's "__logits__" on them, which the peers check their outputs against.
 *
 * Engines: frozen (the plan on --threads threads), frozen-auto (the plan
 * choosing between one thread and --threads at batch 1 by timing both, its
 * default), graph (graph_forward on an inference handle).
 *
 * Usage: bench_infer [--batch LIST] [--threads LIST] [--time S] [--engines frozen,frozen-auto,graph]
 *                    [--export DIR] MODEL...   (LIST: comma-separated ints) */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compose.h"
#include "decompose.h"
#include "frozen.h"
#include "models.h"
#include "rng.h"
#include "safetensors.h"

#define MAX_LIST 8

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int parse_list(const char *s, int *out) {
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

typedef struct bench_model {
    char name[64];
    graph *g;      /* the model run */
    graph *parent; /* composed: the full model; else g */
    double macs, parent_macs;
} bench_model;

/* BN statistics and affines at random, so the folding has work to do. */
static void randomize_bn(graph *g, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 11);
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *nd = &g->nodes[i];
        if (nd->kind != NODE_BATCHNORM2D) continue;
        static const float lo[4] = {0.5f, -0.2f, -0.2f, 0.5f}, hi[4] = {1.5f, 0.2f, 0.2f, 1.5f};
        for (int j = 0; j < 4; j++) {
            graph_param *p = &g->params[nd->param[j]];
            rng_fill_uniform(&r, p->data, graph_param_numel(p), lo[j], hi[j]);
        }
    }
}

static int model_load(moda_backend *be, const char *spec, bench_model *m) {
    char arch[32] = "";
    float width = 0;
    int k = 0;
    if (sscanf(spec, "%31[^:]:%f:c%d", arch, &width, &k) < 2) return -1;
    model_config cfg;
    if (model_arch_from_name(arch, &cfg.arch) != MODA_OK) return -1;
    cfg = model_config_default(cfg.arch);
    cfg.width = width;
    moda_status s;
    graph *g = model_build(be, &cfg, &s);
    if (!g || model_init(g, &cfg, 1) != MODA_OK) return -1;
    randomize_bn(g, 1);
    snprintf(m->name, sizeof m->name, "%s_w%g%s%.0d", arch, width, k ? "_c" : "", k);
    m->parent = m->g = g;
    m->parent_macs = m->macs = graph_macs(g);
    if (!k) return 0;
    static const int two[2] = {3, 8}, five[5] = {0, 2, 4, 6, 9};
    if (k != 2 && k != 5) return -1;
    rates r;
    if (rates_alloc(&r, g, cfg.num_classes) != MODA_OK) return -1;
    rng q;
    rng_seed(&q, 7, 1);
    for (int l = 0; l < r.n_layers; l++) rng_fill_uniform(&q, r.rate[l], (size_t)r.num_classes * r.units[l], 0, 1);
    compose_plan p;
    s = compose_plan_make(g, &r, k == 2 ? two : five, k, 0.9f, &p);
    if (s == MODA_OK) s = compose_build(g, &p, be, &m->g);
    compose_plan_free(&p);
    rates_free(&r);
    if (s != MODA_OK) return -1;
    m->macs = graph_macs(m->g);
    return 0;
}

static json_t *ints_json(const int *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

/* The graph's nodes in the registry manifest's format. */
static char *graph_json(const graph *g) {
    json_t *nodes = json_array();
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *nd = &g->nodes[i];
        int shape[3] = {nd->c, nd->h, nd->w};
        json_t *o = json_pack("{si,ss,ss,so,so}", "index", i, "kind", node_kind_name(nd->kind), "name", nd->name,
                              "inputs", ints_json(nd->in, nd->n_in), "shape", ints_json(shape, nd->ndim == 4 ? 3 : 1));
        if (nd->kind == NODE_CONV2D || nd->kind == NODE_MAXPOOL2D) {
            const int kc[2] = {nd->p.conv.kh, nd->p.conv.kw}, sc[2] = {nd->p.conv.stride_h, nd->p.conv.stride_w},
                      pc[2] = {nd->p.conv.pad_h, nd->p.conv.pad_w};
            const int kp[2] = {nd->p.pool.kh, nd->p.pool.kw}, sp[2] = {nd->p.pool.stride_h, nd->p.pool.stride_w},
                      pp[2] = {nd->p.pool.pad_h, nd->p.pool.pad_w};
            bool conv = nd->kind == NODE_CONV2D;
            json_object_set_new(o, "kernel", ints_json(conv ? kc : kp, 2));
            json_object_set_new(o, "stride", ints_json(conv ? sc : sp, 2));
            json_object_set_new(o, "pad", ints_json(conv ? pc : pp, 2));
            if (conv) json_object_set_new(o, "groups", json_integer(nd->p.conv.groups));
        }
        if (nd->kind == NODE_CONV2D || nd->kind == NODE_LINEAR)
            json_object_set_new(o, "bias", json_boolean(nd->has_bias));
        json_t *params = json_array();
        for (int j = 0; j < nd->n_param; j++) {
            const graph_param *p = &g->params[nd->param[j]];
            json_array_append_new(params, json_pack("{ss,so}", "name", p->name, "shape", ints_json(p->shape, p->ndim)));
        }
        json_object_set_new(o, "params", params);
        json_array_append_new(nodes, o);
    }
    char *s = json_dumps(nodes, JSON_COMPACT);
    json_decref(nodes);
    return s;
}

static int model_export(moda_backend *be, const bench_model *m, const char *dir) {
    const graph *g = m->g;
    const int n = 2, k = g->nodes[g->output].c;
    const int ishape[4] = {n, g->in_c, g->in_h, g->in_w}, lshape[2] = {n, k};
    const size_t per = (size_t)g->in_c * g->in_h * g->in_w;
    float *x = malloc((size_t)n * per * sizeof(float)), *z = malloc((size_t)n * k * sizeof(float));
    safetensors_entry *e = calloc((size_t)g->n_params + 2, sizeof(*e));
    char *gj = graph_json(g);
    frozen *f = NULL;
    int rc = -1;
    if (!x || !z || !e || !gj) goto done;
    rng q;
    rng_seed(&q, 3, 3);
    rng_fill_normal(&q, x, (uint64_t)n * per, 0, 1);
    if (frozen_new(g, be, n, &f) != MODA_OK || frozen_run(f, x, n, z) != MODA_OK) goto done;
    for (int i = 0; i < g->n_params; i++)
        e[i] = (safetensors_entry){g->params[i].name, SAFETENSORS_F32, g->params[i].ndim, g->params[i].shape,
                                   g->params[i].data};
    e[g->n_params] = (safetensors_entry){"__input__", SAFETENSORS_F32, 4, ishape, x};
    e[g->n_params + 1] = (safetensors_entry){"__logits__", SAFETENSORS_F32, 2, lshape, z};
    const safetensors_kv meta[1] = {{"graph", gj}};
    char path[4096], err[256] = "";
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, m->name);
    if (safetensors_write_file(path, e, g->n_params + 2, meta, 1, err, sizeof err) != MODA_OK) {
        fprintf(stderr, "bench_infer: %s: %s\n", path, err);
        goto done;
    }
    rc = 0;
done:
    frozen_free(f);
    free(gj);
    free(e);
    free(x);
    free(z);
    return rc;
}

typedef struct runner {
    frozen *f;
    graph *h;
    const float *x;
    float *z;
    int n;
} runner;

static moda_status run_once(runner *r) {
    if (r->f) return frozen_run(r->f, r->x, r->n, r->z);
    return graph_forward(r->h, r->x, r->n, false);
}

static int measure(const bench_model *m, const char *engine, int batch, int threads, double seconds) {
    moda_backend *be = backend_cpu_new();
    if (!be) return -1;
    backend_set_threads(be, threads);
    const graph *g = m->g;
    const size_t per = (size_t)g->in_c * g->in_h * g->in_w;
    const int k = g->nodes[g->output].c;
    float *x = malloc((size_t)batch * per * sizeof(float)), *z = malloc((size_t)batch * k * sizeof(float));
    runner r = {NULL, NULL, x, z, batch};
    moda_status s = x && z ? MODA_OK : MODA_ERR_NOMEM;
    rng q;
    rng_seed(&q, 5, 5);
    if (s == MODA_OK) rng_fill_normal(&q, x, (uint64_t)batch * per, 0, 1);
    double t0 = now_ms();
    if (s == MODA_OK && strstr(engine, "frozen")) {
        s = frozen_new(g, be, batch, &r.f);
        /* frozen: on `threads` at every batch size; frozen-auto: the plan's
         * own choice at batch 1 (it times one thread against `threads`). */
        if (s == MODA_OK && !strcmp(engine, "frozen")) frozen_set_small_batch_threads(r.f, batch, threads);
        if (s == MODA_OK) s = frozen_prepare(r.f, batch);
    } else if (s == MODA_OK) {
        r.h = graph_share(g, be);
        s = r.h ? graph_plan_inference(r.h, batch) : MODA_ERR_NOMEM;
    }
    double setup_ms = now_ms() - t0;
    /* Warm up for a tenth of the time, at least 3 calls. */
    int calls = 0;
    for (t0 = now_ms(); s == MODA_OK && (calls < 3 || now_ms() - t0 < 100 * seconds); calls++) s = run_once(&r);
    int cap = 20000, n = 0;
    double *ms = malloc((size_t)cap * sizeof(double));
    if (!ms) s = MODA_ERR_NOMEM;
    for (t0 = now_ms(); s == MODA_OK && n < cap && (n < 5 || now_ms() - t0 < 1000 * seconds); n++) {
        double a = now_ms();
        s = run_once(&r);
        ms[n] = now_ms() - a;
    }
    int rc = -1;
    if (s == MODA_OK) {
        qsort(ms, (size_t)n, sizeof(double), cmp_double);
        double med = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
        printf("{\"model\":\"%s\",\"engine\":\"ours-%s\",\"batch\":%d,\"threads\":%d,\"ms\":%.5f,\"min_ms\":%.5f,"
               "\"max_ms\":%.5f,\"calls\":%d,\"setup_ms\":%.3f,\"macs\":%.0f,\"parent_macs\":%.0f,\"bytes\":%zu,"
               "\"ran_threads\":%d,\"reorders\":%d,\"steps\":%d}\n",
               m->name, engine, batch, threads, med, ms[0], ms[n - 1], n, setup_ms, m->macs, m->parent_macs,
               r.f ? frozen_bytes(r.f) : graph_activation_bytes(r.h), r.f ? frozen_threads(r.f, batch) : threads,
               r.f ? frozen_reorders(r.f, batch) : -1, r.f ? frozen_steps(r.f, batch) : -1);
        fflush(stdout);
        rc = 0;
    } else {
        fprintf(stderr, "bench_infer: %s %s batch %d: %s\n", m->name, engine, batch, moda_status_string(s));
    }
    free(ms);
    frozen_free(r.f);
    graph_free(r.h);
    free(x);
    free(z);
    backend_free(be);
    return rc;
}

static const char *const known_engines[3] = {"frozen", "frozen-auto", "graph"};

/* Whether the comma-separated list names engine e. */
static bool has_engine(const char *list, const char *e) {
    size_t n = strlen(e);
    for (const char *p = list; (p = strstr(p, e)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: bench_infer [--batch LIST] [--threads LIST] [--time S] "
                                "[--engines frozen,frozen-auto,graph] [--export DIR] MODEL...\n"
                                "MODEL: ARCH:WIDTH or ARCH:WIDTH:cK (composed, K 2 or 5), e.g. resnet18:0.5:c2\n";
    int batches[MAX_LIST] = {1, 64}, n_batches = 2, threads[MAX_LIST] = {2}, n_threads = 1;
    double seconds = 1.0;
    const char *export_dir = NULL, *engines = "frozen";
    int first_model = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (argv[i][0] != '-') {
            first_model = i;
            break;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "bench_infer: %s needs a value\n%s", argv[i], usage);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(argv[i - 1], "--batch")) n_batches = parse_list(v, batches);
        else if (!strcmp(argv[i - 1], "--threads")) n_threads = parse_list(v, threads);
        else if (!strcmp(argv[i - 1], "--time")) seconds = atof(v);
        else if (!strcmp(argv[i - 1], "--export")) export_dir = v;
        else if (!strcmp(argv[i - 1], "--engines")) engines = v;
        else {
            fprintf(stderr, "bench_infer: unknown option %s\n%s", argv[i - 1], usage);
            return 2;
        }
        if (n_batches < 1 || n_threads < 1 || !(seconds > 0)) {
            fprintf(stderr, "bench_infer: bad value %s for %s\n%s", v, argv[i - 1], usage);
            return 2;
        }
    }
    int n_engines = 0;
    for (int e = 0; e < 3; e++) n_engines += has_engine(engines, known_engines[e]);
    if (!n_engines) {
        fprintf(stderr, "bench_infer: no known engine in %s\n%s", engines, usage);
        return 2;
    }
    if (first_model == argc) {
        fputs(usage, stderr);
        return 2;
    }
    moda_backend *be = backend_cpu_new();
    if (!be) return 1;
    int rc = 0;
    for (int i = first_model; i < argc && !rc; i++) {
        bench_model m = {0};
        if (model_load(be, argv[i], &m)) {
            fprintf(stderr, "bench_infer: cannot make model %s\n%s", argv[i], usage);
            rc = 2;
            break;
        }
        if (export_dir) {
            rc = model_export(be, &m, export_dir) ? 1 : 0;
        } else {
            for (int b = 0; b < n_batches && !rc; b++)
                for (int t = 0; t < n_threads && !rc; t++) {
                    for (int e = 0; e < 3 && !rc; e++)
                        if (has_engine(engines, known_engines[e]))
                            rc = measure(&m, known_engines[e], batches[b], threads[t], seconds);
                }
        }
        if (m.g != m.parent) graph_free(m.g);
        graph_free(m.parent);
    }
    backend_free(be);
    return rc;
}
