#include "cmd_reuse.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "cli_env.h"
#include "compose.h"
#include "fileio.h"
#include "model_data.h"
#include "progress.h"
#include "registry.h"
#include "report.h"
#include "rng.h"
#include "train.h"

#define MAX_ALL_CLASSES 16 /* "all" subsets only up to 2^16 of them */
#define MAX_THREADS 256
/* Largest cache of shared-prefix activations; beyond it composed models
 * start from the images. */
#define PREFIX_CACHE_MAX ((size_t)4 << 30)

/* One model of the comparison with its whole-test-set logits. */
typedef struct reuse_model {
    registry_model m;
    moda_backend *be;
    dataset test;     /* sorted by class, so a class's samples are one run */
    int *class_start; /* (K + 1): class k is samples class_start[k] .. [k + 1] - 1 */
    float *logits;    /* (n_test, K), owned */
    /* The activations of node `cut` for every test sample, (n_test,
     * prefix_numel), in backend memory so that a GPU never sees them go by
     * again: on the CPU with cut 0 they are the images themselves. */
    int cut;
    size_t prefix_numel;
    float *prefix;
    bool own_prefix;
} reuse_model;

static void reuse_model_free(reuse_model *rm) {
    if (rm->own_prefix) backend_dealloc(rm->be, rm->prefix);
    registry_model_free(&rm->m);
    dataset_free(&rm->test);
    free(rm->class_start);
    free(rm->logits);
}

/* Node numel per sample. */
static size_t node_size(const graph_node *n) { return (size_t)n->c * n->h * n->w; }

/* The composed models' shared prefix: the deepest cut up to which every
 * single-class module, and so every union of them, keeps every unit. Up
 * to there a composed model computes exactly what the full model does, so
 * it can start from activations computed once (the largest that fit
 * PREFIX_CACHE_MAX; 0, the input, when none does). */
static moda_status shared_prefix(const graph *g, const rates *r, float tau, compose_mode mode, int n_test, int *cut) {
    int first_drop = g->n_nodes;
    for (int c = 0; c < r->num_classes; c++) {
        compose_plan p;
        MODA_TRY(compose_plan_make_mode(g, r, &c, 1, tau, mode, &p));
        for (int i = 1; i < first_drop; i++)
            if (p.kept[i] < g->nodes[i].c) first_drop = i;
        compose_plan_free(&p);
    }
    *cut = 0;
    for (int i = first_drop - 1; i > 0 && !*cut; i--)
        if (graph_is_cut(g, i) && (size_t)n_test * node_size(&g->nodes[i]) * sizeof(float) <= PREFIX_CACHE_MAX)
            *cut = i;
    return MODA_OK;
}

/* Loads a model and its test set and runs the full model over it. With
 * prefix_tau >= 0 it also finds the composed models' shared prefix at that
 * threshold and keeps its activations. */
static moda_status load_model(const registry *reg, const char *name, moda_backend *be, const model_data_options *data,
                              int batch, float prefix_tau, compose_mode mode, reuse_model *rm, char *err,
                              size_t errlen) {
    memset(rm, 0, sizeof(*rm));
    rm->be = be;
    MODA_TRY(registry_load_model(reg, name, be, &rm->m, err, errlen));
    model_info *mi = &rm->m.info;
    MODA_TRY(model_data_load(&rm->test, data, name, mi, DATASET_TEST, 0, err, errlen));
    if (rm->test.num_classes < mi->model.num_classes) { /* more is fine: those samples are in no subset */
        snprintf(err, errlen, "%s has %d classes, its test set only %d", name, mi->model.num_classes,
                 rm->test.num_classes);
        return MODA_ERR_SHAPE;
    }
    rm->class_start = malloc(((size_t)rm->test.num_classes + 1) * sizeof(int));
    if (!rm->class_start) return MODA_ERR_NOMEM;
    MODA_TRY(dataset_sort_by_class(&rm->test, rm->class_start));
    MODA_TRY(graph_plan_inference(rm->m.g, batch));
    graph *g = rm->m.g;
    int n = rm->test.n, k = mi->model.num_classes;
    if (prefix_tau >= 0) MODA_TRY(shared_prefix(g, &rm->m.r, prefix_tau, mode, n, &rm->cut));
    rm->prefix_numel = node_size(&g->nodes[rm->cut]);
    size_t prefix_bytes = (size_t)n * rm->prefix_numel * sizeof(float);
    rm->own_prefix = rm->cut || !backend_host_memory(be);
    rm->prefix = rm->own_prefix ? backend_alloc(be, prefix_bytes) : rm->test.images;
    rm->logits = malloc((size_t)n * k * sizeof(float));
    if (!rm->prefix || !rm->logits) return MODA_ERR_NOMEM;
    if (rm->own_prefix && !rm->cut) MODA_TRY(backend_copy_to_device(be, rm->prefix, rm->test.images, prefix_bytes));
    return evaluate_outputs(g, &rm->test, batch, rm->logits, rm->cut, rm->cut ? rm->prefix : NULL);
}

/* Accuracy over samples whose label is in T, argmax over T's columns of
 * logits (rows indexed by sample), labels remapped to positions in T. */
static double sliced_accuracy(const float *logits, int k, const dataset *ds, const int *t, int nt) {
    long right = 0, total = 0;
    for (int i = 0; i < ds->n; i++) {
        int pos = -1;
        for (int j = 0; j < nt; j++)
            if (t[j] == ds->labels[i]) pos = j;
        if (pos < 0) continue;
        int best = 0;
        for (int j = 1; j < nt; j++)
            if (logits[(size_t)i * k + t[j]] > logits[(size_t)i * k + t[best]]) best = j;
        right += best == pos;
        total++;
    }
    return total ? (double)right / total : 0;
}

typedef struct size_row {
    int tasks;
    double composed, full_moda, full_st, size, flops;
} size_row;

static moda_status write_outputs(const char *dir, const char *model, float tau, const size_row *rows, int k,
                                 bool have_st, char *err, size_t errlen) {
    char path[1200];
    MODA_TRY(fileio_mkdir_p(dir, err, errlen));
    report_text csv = {0}, svg = {0};
    report_text_printf(&csv, "subset_size,tasks,composed_acc,full_moda_acc,full_st_acc,size_ratio,flops_ratio\n");
    for (int s = 2; s <= k; s++) {
        if (!rows[s].tasks) continue;
        char st_acc[32] = ""; /* empty without a standard-trained model */
        if (have_st) snprintf(st_acc, sizeof st_acc, "%.4f", 100 * rows[s].full_st);
        report_text_printf(&csv, "%d,%d,%.4f,%.4f,%s,%.4f,%.4f\n", s, rows[s].tasks, 100 * rows[s].composed,
                           100 * rows[s].full_moda, st_acc, rows[s].size, rows[s].flops);
    }
    snprintf(path, sizeof path, "%s/reuse.csv", dir);
    MODA_TRY(report_text_write(&csv, path, err, errlen));
    /* SVG: accuracy (left axis, %) and size ratio (right axis, %) against subset size. */
    double lo = 100, hi = 0;
    for (int s = 2; s <= k; s++)
        if (rows[s].tasks) {
            double v[3] = {100 * rows[s].composed, 100 * rows[s].full_moda, 100 * rows[s].full_st};
            for (int j = 0; j < (have_st ? 3 : 2); j++) {
                if (v[j] < lo) lo = v[j];
                if (v[j] > hi) hi = v[j];
            }
        }
    lo = lo > 5 ? lo - 5 : 0;
    hi = hi < 99.5 ? hi + 0.5 : 100;
    double x0 = 70, y0 = 50, w = 560, h = 300;
#define PX(s) (x0 + (double)((s) - 2) / (k > 2 ? k - 2 : 1) * w)
    report_text_printf(&svg,
                       "<svg xmlns='http://www.w3.org/2000/svg' width='760' height='450' font-family='sans-serif'>\n"
                       "<rect width='100%%' height='100%%' fill='white'/>\n"
                       "<text x='380' y='25' font-size='15' text-anchor='middle'>%s: reuse accuracy and composed "
                       "size (tau %.2f)</text>\n<rect x='%g' y='%g' width='%g' height='%g' fill='none' stroke='#888'/>\n",
                       model, tau, x0, y0, w, h);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4, y = y0 + h - (v - lo) / (hi - lo) * h;
        report_text_printf(&svg,
                           "<text x='%g' y='%.1f' font-size='11' text-anchor='end'>%.1f%%</text>\n"
                           "<text x='%g' y='%.1f' font-size='11' fill='#2ca02c'>%.0f%%</text>\n",
                           x0 - 4, y + 4, v, x0 + w + 4, y + 4, 100.0 * t / 4);
    }
    const char *names[4] = {"composed (MODA)", "full MODA, sliced", "full ST, sliced", "composed size"};
    const char *colors[4] = {"#d62728", "#1f77b4", "#ff7f0e", "#2ca02c"};
    for (int series = 0; series < 4; series++) {
        if (series == 2 && !have_st) continue;
        report_text_printf(&svg, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colors[series]);
        for (int s = 2; s <= k; s++) {
            if (!rows[s].tasks) continue;
            double v = series == 0 ? rows[s].composed : series == 1 ? rows[s].full_moda
                                                   : series == 2 ? rows[s].full_st : rows[s].size;
            double y = series == 3 ? y0 + h - v * h : y0 + h - (100 * v - lo) / (hi - lo) * h;
            report_text_printf(&svg, "%.1f,%.1f ", PX(s), y);
        }
        /* The legend sits in one row under the axis label. */
        report_text_printf(&svg, "'/>\n<text x='%g' y='%g' font-size='12' fill='%s'>%s</text>\n",
                           x0 + 145 * series, y0 + h + 62, colors[series], names[series]);
    }
    for (int s = 2; s <= k; s += (k > 20 ? k / 10 : 1))
        report_text_printf(&svg, "<text x='%.1f' y='%g' font-size='11' text-anchor='middle'>%d</text>\n", PX(s),
                           y0 + h + 16, s);
    report_text_printf(&svg,
                       "<text x='%g' y='%g' font-size='12' text-anchor='middle'>classes in the task</text>\n</svg>\n",
                       x0 + w / 2, y0 + h + 36);
#undef PX
    snprintf(path, sizeof path, "%s/reuse.svg", dir);
    return report_text_write(&svg, path, err, errlen);
}

/* What one subset's composed model did, and how long it took. */
typedef struct subset_result {
    long right, samples;
    size_t params;
    double macs;
    double setup_s; /* composing, planning and freeing the model */
    double run_s;   /* its passes over the samples */
} subset_result;

/* The subsets, shared by the workers; each takes the next one. */
typedef struct reuse_job {
    const reuse_model *mo;
    const char *device; /* each worker's backend */
    const backend_options *backend;
    const int *subsets, *sizes;
    int count, k, batch;
    float tau;
    compose_mode mode;
    subset_result *res;
    atomic_int next, done;
    atomic_long classes_done; /* the sum of finished subsets' sizes: work is about proportional to it */
    long classes_total;
    atomic_bool failed;
    pthread_mutex_t lock; /* guards status, err and the progress output */
    moda_status status;
    char err[ERR_LEN];
    bool live;
    double t0, last_report;
} reuse_job;

/* Progress: a live line on a terminal, else a plain line every 30 s so
 * that a log shows a long run is alive. The estimate weighs each subset
 * by its size, since a 10-class subset runs on five times the samples of
 * a 2-class one. Call with the lock held. */
static void report_progress(reuse_job *j, int done) {
    double now = progress_now(), el = now - j->t0;
    long cd = atomic_load(&j->classes_done);
    double left = cd > 0 ? el * (double)(j->classes_total - cd) / (double)cd : 0;
    if (j->live) {
        if (done % 10 == 0 || done == j->count)
            fprintf(stderr, "\r%d/%d subsets, %.0f s, about %.0f s left\033[K", done, j->count, el, left);
    } else if (now - j->last_report >= 30 && done < j->count) {
        fprintf(stderr, "%d/%d subsets, %.0f s, about %.0f s left\n", done, j->count, el, left);
        j->last_report = now;
    }
}

/* A worker's buffers, in batch-size units. */
typedef struct worker_buf {
    float *x;           /* (batch, prefix numel), backend memory: a batch gathered from several runs */
    float *logits;      /* (batch, K) */
    int *want;          /* (batch): the sample's class as a position in T */
    int *run_at, *run_len; /* (K): a batch's runs of consecutive samples */
} worker_buf;

/* Composes subset t's model on be and runs it over the test samples of
 * its classes, starting from the shared prefix's activations. The test
 * set is sorted by class, so a batch is a few runs of consecutive samples:
 * one class after another, in the order of T. */
static moda_status eval_subset(reuse_job *j, int t, moda_backend *be, worker_buf *wb) {
    const reuse_model *mo = j->mo;
    const int *cls = j->subsets + (size_t)t * j->k, *start = mo->class_start;
    int nt = j->sizes[t];
    double t0 = progress_now();
    compose_plan p = {0};
    graph *g = NULL;
    moda_status s = compose_plan_make_mode(mo->m.g, &mo->m.r, cls, nt, j->tau, j->mode, &p);
    if (s == MODA_OK) s = compose_build(mo->m.g, &p, be, &g);
    if (s == MODA_OK) s = graph_plan_inference(g, j->batch);
    double t1 = progress_now();
    size_t per = mo->prefix_numel;
    long right = 0, samples = 0;
    int ci = 0, pos = start[cls[0]];
    while (s == MODA_OK) {
        int b = 0, runs = 0;
        while (b < j->batch && ci < nt) {
            int end = start[cls[ci] + 1], take = end - pos < j->batch - b ? end - pos : j->batch - b;
            if (take > 0) {
                wb->run_at[runs] = pos;
                wb->run_len[runs++] = take;
                for (int i = 0; i < take; i++) wb->want[b + i] = ci;
                b += take;
                pos += take;
            }
            if (pos == end && ++ci < nt) pos = start[cls[ci]];
        }
        if (!b) break;
        const float *in = mo->prefix + (size_t)wb->run_at[0] * per; /* one run: read in place */
        for (int r = 0, at = 0; runs > 1 && s == MODA_OK && r < runs; at += wb->run_len[r++])
            s = backend_copy_to_device(be, wb->x + (size_t)at * per, mo->prefix + (size_t)wb->run_at[r] * per,
                                       (size_t)wb->run_len[r] * per * sizeof(float));
        if (runs > 1) in = wb->x;
        if (s == MODA_OK) s = graph_forward_from(g, mo->cut, in, b);
        if (s == MODA_OK) s = backend_copy_to_host(be, wb->logits, graph_output(g)->out.data, (size_t)b * nt * sizeof(float));
        for (int i = 0; s == MODA_OK && i < b; i++) {
            const float *row = wb->logits + (size_t)i * nt;
            int best = 0;
            for (int c = 1; c < nt; c++)
                if (row[c] > row[best]) best = c;
            right += best == wb->want[i];
        }
        samples += b;
    }
    double t2 = progress_now();
    if (s == MODA_OK)
        j->res[t] = (subset_result){right, samples, compose_plan_params(mo->m.g, &p), compose_plan_macs(mo->m.g, &p),
                                    0, t2 - t1};
    graph_free(g);
    compose_plan_free(&p);
    j->res[t].setup_s = (t1 - t0) + (progress_now() - t2);
    return s;
}

/* A worker: one backend and one OpenMP thread of its own, so that the
 * cores run whole subsets side by side instead of splitting each small
 * composed layer between them. */
static void *reuse_worker(void *arg) {
    reuse_job *j = arg;
    const reuse_model *mo = j->mo;
    char why[256] = "";
    moda_backend *be = backend_new(j->device, j->backend, why, sizeof why);
    backend_set_threads(be, 1);
    worker_buf wb = {
        .x = be ? backend_alloc(be, (size_t)j->batch * mo->prefix_numel * sizeof(float)) : NULL,
        .logits = malloc((size_t)j->batch * j->k * sizeof(float)),
        .want = malloc((size_t)j->batch * sizeof(int)),
        .run_at = malloc((size_t)j->k * sizeof(int)),
        .run_len = malloc((size_t)j->k * sizeof(int)),
    };
    moda_status s = !be ? MODA_ERR_BACKEND
                  : (!wb.x || !wb.logits || !wb.want || !wb.run_at || !wb.run_len) ? MODA_ERR_NOMEM
                                                                                    : MODA_OK;
    int t = -1;
    while (s == MODA_OK && !atomic_load(&j->failed) && (t = atomic_fetch_add(&j->next, 1)) < j->count) {
        s = eval_subset(j, t, be, &wb);
        atomic_fetch_add(&j->classes_done, j->sizes[t]);
        int done = atomic_fetch_add(&j->done, 1) + 1;
        if (s == MODA_OK) {
            pthread_mutex_lock(&j->lock);
            report_progress(j, done);
            pthread_mutex_unlock(&j->lock);
        }
    }
    if (s != MODA_OK) {
        pthread_mutex_lock(&j->lock);
        if (j->status == MODA_OK) {
            j->status = s;
            if (t >= 0) snprintf(j->err, sizeof j->err, "subset %d: %s", t, moda_status_string(s));
            else snprintf(j->err, sizeof j->err, "starting a worker: %s", why[0] ? why : moda_status_string(s));
        }
        atomic_store(&j->failed, true);
        pthread_mutex_unlock(&j->lock);
    }
    if (be) backend_dealloc(be, wb.x);
    free(wb.logits);
    free(wb.want);
    free(wb.run_at);
    free(wb.run_len);
    backend_free(be);
    return NULL;
}

/* Runs every subset on `threads` workers; results land in j->res. */
static moda_status run_subsets(reuse_job *j, int threads, char *err, size_t errlen) {
    pthread_t tid[MAX_THREADS];
    int started = 0;
    pthread_mutex_init(&j->lock, NULL);
    atomic_init(&j->next, 0);
    atomic_init(&j->done, 0);
    atomic_init(&j->classes_done, 0);
    atomic_init(&j->failed, false);
    j->status = MODA_OK;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, reuse_worker, j) != 0) break;
    if (!started) reuse_worker(j); /* no thread to be had: run in this one */
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&j->lock);
    if (j->status != MODA_OK) snprintf(err, errlen, "%s", j->err);
    return j->status;
}

/* Subsets as class-index lists: all of size 2..K in order of size, or n
 * seeded random ones of uniformly random size. */
static int *make_subsets(int k, int n_random, uint64_t seed, int *count, int **sizes) {
    int total = n_random;
    if (!n_random) total = (1 << k) - k - 1;
    int *list = malloc((size_t)total * k * sizeof(int));
    *sizes = malloc((size_t)total * sizeof(int));
    if (!list || !*sizes) {
        free(list);
        free(*sizes);
        return NULL;
    }
    int t = 0;
    if (!n_random) {
        for (int size = 2; size <= k; size++)
            for (unsigned m = 0; m < (1u << k); m++) {
                if (__builtin_popcount(m) != size) continue;
                int j = 0;
                for (int c = 0; c < k; c++)
                    if (m & (1u << c)) list[(size_t)t * k + j++] = c;
                (*sizes)[t++] = size;
            }
    } else {
        rng r;
        rng_seed(&r, seed, 21);
        int *perm = malloc((size_t)k * sizeof(int));
        for (; perm && t < total; t++) {
            int size = 2 + (int)rng_below(&r, (uint32_t)(k - 1));
            for (int c = 0; c < k; c++) perm[c] = c;
            rng_shuffle_i32(&r, perm, (uint32_t)k);
            for (int j = 0; j < size; j++) list[(size_t)t * k + j] = perm[j];
            (*sizes)[t] = size;
        }
        free(perm);
    }
    *count = t;
    return list;
}

/* What `moda eval-reuse` was asked. */
typedef struct reuse_options {
    const char *reg_path, *model, *st_model, *tasks, *out, *device, *mode_name;
    model_data_options data;
    float tau;
    compose_mode mode;
    uint64_t seed;
    int batch, threads; /* threads -1: not given */
    int n_random;       /* --tasks N; 0 for all */
    registry_remote_options remote;
    backend_options backend;
} reuse_options;

/* Parse and check the command line into o. Returns -1 to go on, else the
 * exit code (0 after --help, EXIT_USAGE after a message). */
static int parse_reuse_options(int argc, char **argv, reuse_options *o) {
    *o = (reuse_options){.tasks = "all", .device = "cpu", .tau = DECOMPOSE_DEFAULT_TAU, .batch = 256, .threads = -1,
                         .data = {.log = stderr}};
    bool help = false;
    const arg_spec specs[] = {
        {"registry", ARG_STRING, &o->reg_path, "DIR|URL", "module registry: a directory, or http(s) to read"},
        {"model", ARG_STRING, &o->model, "NAME", "the MODA-trained model to compose"},
        {"st-model", ARG_STRING, &o->st_model, "NAME", "a standard-trained model to compare against (optional)"},
        {"tau", ARG_FLOAT, &o->tau, "T", "activation-rate threshold (0.9)"},
        {"mode", ARG_STRING, &o->mode_name, "M", "composition mode: tied | per-layer (tied)"},
        {"tasks", ARG_STRING, &o->tasks, "all|N", "every subset of 2..K classes, or N random ones (all)"},
        {"seed", ARG_U64, &o->seed, "N", "seed for random subsets (0)"},
        {"batch-size", ARG_INT, &o->batch, "N", "evaluation batch size (256)"},
        {"threads", ARG_INT, &o->threads, "N",
         "subsets evaluated side by side (OMP_NUM_THREADS, else the cores; 1 on a GPU)"},
        {"data-dir", ARG_STRING, &o->data.data_dir, "DIR", "test data directory (default: the recorded one)"},
        {"dataset", ARG_STRING, &o->data.kind, "D", "the dataset's kind; must be the one trained on (default: it)"},
        {"out", ARG_STRING, &o->out, "DIR", "write reuse.csv and reuse.svg there"},
        {"device", ARG_STRING, &o->device, "D", "cpu | cuda | auto (cpu)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    bool ok = args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help);
    if (ok && !help && (!o->reg_path || !o->model)) {
        fprintf(stderr, "moda eval-reuse: --registry and --model are required\n");
        ok = false;
    }
    if (ok && strcmp(o->tasks, "all") != 0 && (sscanf(o->tasks, "%d", &o->n_random) != 1 || o->n_random < 1)) {
        fprintf(stderr, "moda eval-reuse: --tasks takes 'all' or a positive count\n");
        ok = false;
    }
    if (ok && o->mode_name && !compose_mode_parse(o->mode_name, &o->mode)) {
        fprintf(stderr, "moda eval-reuse: --mode must be tied or per-layer\n");
        ok = false;
    }
    if (ok && !backend_name_known(o->device)) {
        fprintf(stderr, "moda eval-reuse: unknown --device '%s' (expected cpu, cuda or auto)\n", o->device);
        ok = false;
    }
    if (ok && (!(o->tau >= 0 && o->tau <= 1) || o->batch < 1 || (o->threads != -1 && o->threads < 1) ||
               o->threads > MAX_THREADS)) {
        fprintf(stderr, "moda eval-reuse: --tau must be in [0, 1], --batch-size positive and --threads in 1..%d\n",
                MAX_THREADS);
        ok = false;
    }
    if (!ok || help) {
        FILE *f = help ? stdout : stderr;
        fprintf(f, "usage: moda eval-reuse --registry DIR --model NAME [options]\n\n"
                   "For each class subset T, composes the model's modules for T and measures its\n"
                   "accuracy on the test samples of T (labels remapped to positions in T), next to\n"
                   "the full models' logits sliced to T. Reports means per subset size.\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    o->remote = cli_env_registry_options();
    o->backend = cli_env_backend_options();
    return -1;
}

/* What a run holds, freed by reuse_run_free. */
typedef struct reuse_run {
    moda_backend *be;
    int threads; /* workers asked for */
    registry *reg;
    reuse_model mo, st;
    int k;
    int *subsets, *sizes, count;
    subset_result *res;
    size_row *rows; /* (K + 1) by subset size */
    double t0;      /* when the subsets started */
    bool live;      /* progress redrawn in place on a terminal */
} reuse_run;

static void reuse_run_free(reuse_run *r) {
    /* The models go before the backend that holds their memory. */
    reuse_model_free(&r->st);
    free(r->subsets);
    free(r->sizes);
    free(r->rows);
    free(r->res);
    reuse_model_free(&r->mo);
    registry_close(r->reg);
    backend_free(r->be);
}

/* The backend, the models with their test sets, and the subsets to run. */
static moda_status prepare_run(const reuse_options *o, reuse_run *r, char *err, size_t errlen) {
    r->be = backend_new(o->device, &o->backend, err, errlen);
    /* One GPU: subsets one after another, unless asked otherwise. */
    r->threads = o->threads != -1 ? o->threads : r->be && !backend_host_memory(r->be) ? 1 : omp_get_max_threads();
    MODA_TRY(r->be ? registry_open(o->reg_path, &o->remote, &r->reg, err, errlen) : MODA_ERR_BACKEND);
    MODA_TRY(load_model(r->reg, o->model, r->be, &o->data, o->batch, o->tau, o->mode, &r->mo, err, errlen));
    if (o->st_model)
        MODA_TRY(load_model(r->reg, o->st_model, r->be, &o->data, o->batch, -1, o->mode, &r->st, err, errlen));
    int k = r->k = r->mo.m.info.model.num_classes;
    if (o->st_model && r->st.m.info.model.num_classes != k)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s has %d classes, %s has %d", o->st_model,
                           r->st.m.info.model.num_classes, o->model, k);
    if (!o->n_random && k > MAX_ALL_CLASSES)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%d classes have too many subsets for --tasks all; give a count",
                           k);
    r->subsets = make_subsets(k, o->n_random, o->seed, &r->count, &r->sizes);
    r->rows = calloc((size_t)k + 1, sizeof(*r->rows));
    r->res = calloc((size_t)r->count + 1, sizeof(*r->res));
    return r->subsets && r->rows && r->res ? MODA_OK : MODA_ERR_NOMEM;
}

/* Every subset's composed model over its samples, on the workers. */
static moda_status evaluate_subsets(const reuse_options *o, reuse_run *r, char *err, size_t errlen) {
    reuse_job job = {.mo = &r->mo, .device = backend_name(r->be), .backend = &o->backend, .subsets = r->subsets,
                     .sizes = r->sizes, .count = r->count, .k = r->k, .batch = o->batch, .tau = o->tau,
                     .mode = o->mode, .res = r->res, .live = r->live, .t0 = r->t0, .last_report = r->t0};
    for (int t = 0; t < r->count; t++) job.classes_total += r->sizes[t];
    return run_subsets(&job, r->threads < r->count ? r->threads : r->count, err, errlen);
}

/* The results summed by subset size, in subset order so that the sums do
 * not depend on timing; report_sizes turns them into means. */
static void tally_sizes(const reuse_options *o, reuse_run *r) {
    int k = r->k;
    double full_params = (double)graph_param_count(r->mo.m.g), full_macs = graph_macs(r->mo.m.g);
    for (int t = 0; t < r->count; t++) {
        const int *cls = r->subsets + (size_t)t * k;
        int nt = r->sizes[t];
        const subset_result *res = &r->res[t];
        size_row *row = &r->rows[nt];
        row->tasks++;
        row->composed += res->samples ? (double)res->right / res->samples : 0;
        row->full_moda += sliced_accuracy(r->mo.logits, k, &r->mo.test, cls, nt);
        if (o->st_model) row->full_st += sliced_accuracy(r->st.logits, k, &r->st.test, cls, nt);
        row->size += (double)res->params / full_params;
        row->flops += res->macs / full_macs;
    }
}

/* The summary on stdout: the run, then a row of means per subset size and
 * one over all subsets. */
static void report_sizes(const reuse_options *o, reuse_run *r) {
    int k = r->k, count = r->count;
    const graph_node *cut = &r->mo.m.g->nodes[r->mo.cut];
    printf("%s (tau %.2f, %s), %d subsets%s, %.1f s on %d %s workers\n", o->model, o->tau,
           compose_mode_name(o->mode), count, o->n_random ? " (random)" : "", progress_now() - r->t0,
           r->threads < count ? r->threads : count,
           backend_name(r->be));
    if (r->mo.cut)
        printf("every module keeps nodes 1-%d (through %s%s%s), computed once for the test set\n", r->mo.cut,
               node_kind_name(cut->kind), cut->name[0] ? " " : "", cut->name);
    double setup = 0, run = 0;
    for (int t = 0; t < count; t++) {
        setup += r->res[t].setup_s;
        run += r->res[t].run_s;
    }
    printf("a subset's model takes %.1f ms to compose and %.1f ms to run over its samples (means)\n",
           1e3 * setup / count, 1e3 * run / count);
    printf("\n%-6s %6s %10s %10s %10s %8s %8s\n", "size", "tasks", "composed", "full MODA",
           o->st_model ? "full ST" : "-", "params", "FLOPs");
    double sum[5] = {0};
    for (int z = 2; z <= k; z++) {
        size_row *row = &r->rows[z];
        if (!row->tasks) continue;
        row->composed /= row->tasks;
        row->full_moda /= row->tasks;
        row->full_st /= row->tasks;
        row->size /= row->tasks;
        row->flops /= row->tasks;
        char st[16] = "-"; /* no ST model: no column of zeros */
        if (o->st_model) snprintf(st, sizeof st, "%.2f%%", 100 * row->full_st);
        printf("%-6d %6d %9.2f%% %9.2f%% %10s %7.2f%% %7.2f%%\n", z, row->tasks, 100 * row->composed,
               100 * row->full_moda, st, 100 * row->size, 100 * row->flops);
        double w = row->tasks;
        sum[0] += w * row->composed;
        sum[1] += w * row->full_moda;
        sum[2] += w * row->full_st;
        sum[3] += w * row->size;
        sum[4] += w * row->flops;
    }
    char st[16] = "-";
    if (o->st_model) snprintf(st, sizeof st, "%.2f%%", 100 * sum[2] / count);
    printf("%-6s %6d %9.2f%% %9.2f%% %10s %7.2f%% %7.2f%%\n", "all", count, 100 * sum[0] / count,
           100 * sum[1] / count, st, 100 * sum[3] / count, 100 * sum[4] / count);
}

int cmd_eval_reuse(int argc, char **argv) {
    reuse_options o;
    int rc = parse_reuse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    char err[ERR_LEN] = "";
    reuse_run r = {0};
    moda_status s = prepare_run(&o, &r, err, sizeof err);
    r.live = isatty(fileno(stderr));
    r.t0 = progress_now();
    if (s == MODA_OK) s = evaluate_subsets(&o, &r, err, sizeof err);
    if (s == MODA_OK) tally_sizes(&o, &r);
    if (r.live && r.count) fprintf(stderr, "\r\033[K");
    if (s == MODA_OK) {
        report_sizes(&o, &r);
        if (o.out) s = write_outputs(o.out, o.model, o.tau, r.rows, r.k, o.st_model != NULL, err, sizeof err);
    }
    reuse_run_free(&r);
    if (s != MODA_OK) {
        fprintf(stderr, "moda eval-reuse: %s\n", err[0] ? err : moda_status_string(s));
        return s == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    return 0;
}
