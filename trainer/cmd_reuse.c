#include "cmd_reuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "compose.h"
#include "fileio.h"
#include "progress.h"
#include "registry.h"
#include "rng.h"
#include "train.h"

#define EXIT_USAGE 2
#define ERR_LEN 1024
#define MAX_ALL_CLASSES 16 /* "all" subsets only up to 2^16 of them */

/* One model of the comparison with its whole-test-set logits. */
typedef struct reuse_model {
    registry_model m;
    dataset test;
    float *logits; /* (n_test, K), owned */
} reuse_model;

static void reuse_model_free(reuse_model *rm) {
    registry_model_free(&rm->m);
    dataset_free(&rm->test);
    free(rm->logits);
}

/* Forward over samples idx[0..n) of ds in batches; logits (n, K) out. */
static moda_status run_samples(graph *g, const dataset *ds, const int *idx, int n, int batch, float *x,
                               float *logits) {
    size_t per = (size_t)ds->c * ds->h * ds->w;
    int k = graph_output(g)->c;
    for (int off = 0; off < n; off += batch) {
        int b = n - off < batch ? n - off : batch;
        for (int i = 0; i < b; i++)
            memcpy(x + (size_t)i * per, ds->images + (size_t)idx[off + i] * per, per * sizeof(float));
        MODA_TRY(graph_forward(g, x, b, false));
        MODA_TRY(g->be->copy_to_host(g->be, logits + (size_t)off * k, graph_output(g)->out.data,
                                     (size_t)b * k * sizeof(float)));
    }
    return MODA_OK;
}

static moda_status load_model(const registry *reg, const char *name, moda_backend *be, const char *data_dir,
                              int batch, reuse_model *rm, char *err, size_t errlen) {
    memset(rm, 0, sizeof(*rm));
    MODA_TRY(registry_load_model(reg, name, be, &rm->m, err, errlen));
    model_info *mi = &rm->m.info;
    MODA_TRY(train_load_split(&rm->test, mi->dataset, data_dir, NULL, DATASET_TEST, mi->model.input_size, 0, mi, err,
                              errlen));
    MODA_TRY(graph_plan(rm->m.g, batch));
    int n = rm->test.n, k = mi->model.num_classes;
    int *all = malloc((size_t)n * sizeof(int));
    float *x = malloc((size_t)batch * rm->test.c * rm->test.h * rm->test.w * sizeof(float));
    rm->logits = malloc((size_t)n * k * sizeof(float));
    moda_status s = (!all || !x || !rm->logits) ? MODA_ERR_NOMEM : MODA_OK;
    for (int i = 0; s == MODA_OK && i < n; i++) all[i] = i;
    if (s == MODA_OK) s = run_samples(rm->m.g, &rm->test, all, n, batch, x, rm->logits);
    free(all);
    free(x);
    return s;
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
    /* CSV */
    size_t cap = 4096 + (size_t)k * 160;
    char *buf = malloc(cap);
    if (!buf) return MODA_ERR_NOMEM;
    size_t len = (size_t)snprintf(buf, cap, "subset_size,tasks,composed_acc,full_moda_acc,full_st_acc,size_ratio,flops_ratio\n");
    for (int s = 2; s <= k; s++) {
        if (!rows[s].tasks) continue;
        char st_acc[32] = ""; /* empty without a standard-trained model */
        if (have_st) snprintf(st_acc, sizeof st_acc, "%.4f", 100 * rows[s].full_st);
        len += (size_t)snprintf(buf + len, cap - len, "%d,%d,%.4f,%.4f,%s,%.4f,%.4f\n", s, rows[s].tasks,
                                100 * rows[s].composed, 100 * rows[s].full_moda, st_acc, rows[s].size, rows[s].flops);
    }
    snprintf(path, sizeof path, "%s/reuse.csv", dir);
    moda_status st = fileio_write_atomic(path, buf, len, err, errlen);
    if (st != MODA_OK) {
        free(buf);
        return st;
    }
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
    len = (size_t)snprintf(buf, cap,
                           "<svg xmlns='http://www.w3.org/2000/svg' width='760' height='450' font-family='sans-serif'>\n"
                           "<rect width='100%%' height='100%%' fill='white'/>\n"
                           "<text x='380' y='25' font-size='15' text-anchor='middle'>%s: reuse accuracy and composed "
                           "size (tau %.2f)</text>\n<rect x='%g' y='%g' width='%g' height='%g' fill='none' stroke='#888'/>\n",
                           model, tau, x0, y0, w, h);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4, y = y0 + h - (v - lo) / (hi - lo) * h;
        len += (size_t)snprintf(buf + len, cap - len,
                                "<text x='%g' y='%.1f' font-size='11' text-anchor='end'>%.1f%%</text>\n"
                                "<text x='%g' y='%.1f' font-size='11' fill='#2ca02c'>%.0f%%</text>\n",
                                x0 - 4, y + 4, v, x0 + w + 4, y + 4, 100.0 * t / 4);
    }
    const char *names[4] = {"composed (MODA)", "full MODA, sliced", "full ST, sliced", "composed size"};
    const char *colors[4] = {"#d62728", "#1f77b4", "#ff7f0e", "#2ca02c"};
    for (int series = 0; series < 4; series++) {
        if (series == 2 && !have_st) continue;
        len += (size_t)snprintf(buf + len, cap - len, "<polyline fill='none' stroke='%s' stroke-width='2' points='",
                                colors[series]);
        for (int s = 2; s <= k; s++) {
            if (!rows[s].tasks) continue;
            double v = series == 0 ? rows[s].composed : series == 1 ? rows[s].full_moda
                                                   : series == 2 ? rows[s].full_st : rows[s].size;
            double y = series == 3 ? y0 + h - v * h : y0 + h - (100 * v - lo) / (hi - lo) * h;
            len += (size_t)snprintf(buf + len, cap - len, "%.1f,%.1f ", PX(s), y);
        }
        /* The legend sits in one row under the axis label. */
        len += (size_t)snprintf(buf + len, cap - len,
                                "'/>\n<text x='%g' y='%g' font-size='12' fill='%s'>%s</text>\n", x0 + 145 * series,
                                y0 + h + 62, colors[series], names[series]);
    }
    for (int s = 2; s <= k; s += (k > 20 ? k / 10 : 1))
        len += (size_t)snprintf(buf + len, cap - len,
                                "<text x='%.1f' y='%g' font-size='11' text-anchor='middle'>%d</text>\n", PX(s),
                                y0 + h + 16, s);
    len += (size_t)snprintf(buf + len, cap - len,
                            "<text x='%g' y='%g' font-size='12' text-anchor='middle'>classes in the task</text>\n</svg>\n",
                            x0 + w / 2, y0 + h + 36);
#undef PX
    snprintf(path, sizeof path, "%s/reuse.svg", dir);
    st = len < cap ? fileio_write_atomic(path, buf, len, err, errlen) : MODA_ERR_NOMEM;
    free(buf);
    return st;
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

int cmd_eval_reuse(int argc, char **argv) {
    const char *reg_path = NULL, *model = NULL, *st_model = NULL, *tasks = "all", *out = NULL, *data_dir = NULL;
    float tau = DECOMPOSE_DEFAULT_TAU;
    uint64_t seed = 0;
    int batch = 256;
    bool help = false;
    const arg_spec specs[] = {
        {"registry", ARG_STRING, &reg_path, "DIR", "module registry"},
        {"model", ARG_STRING, &model, "NAME", "the MODA-trained model to compose"},
        {"st-model", ARG_STRING, &st_model, "NAME", "a standard-trained model to compare against (optional)"},
        {"tau", ARG_FLOAT, &tau, "T", "activation-rate threshold (0.9)"},
        {"tasks", ARG_STRING, &tasks, "all|N", "every subset of 2..K classes, or N random ones (all)"},
        {"seed", ARG_U64, &seed, "N", "seed for random subsets (0)"},
        {"batch-size", ARG_INT, &batch, "N", "evaluation batch size (256)"},
        {"data-dir", ARG_STRING, &data_dir, "DIR", "dataset directory (default: the dataset's own)"},
        {"out", ARG_STRING, &out, "DIR", "write reuse.csv and reuse.svg there"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    int n_random = 0;
    bool ok = args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help);
    if (ok && !help && (!reg_path || !model)) {
        fprintf(stderr, "moda eval-reuse: --registry and --model are required\n");
        ok = false;
    }
    if (ok && strcmp(tasks, "all") != 0 && (sscanf(tasks, "%d", &n_random) != 1 || n_random < 1)) {
        fprintf(stderr, "moda eval-reuse: --tasks takes 'all' or a positive count\n");
        ok = false;
    }
    if (ok && (!(tau >= 0 && tau <= 1) || batch < 1)) {
        fprintf(stderr, "moda eval-reuse: --tau must be in [0, 1] and --batch-size positive\n");
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
    char err[ERR_LEN] = "";
    moda_backend *be = backend_cpu_new();
    registry *reg = NULL;
    reuse_model mo = {0}, st = {0};
    size_row *rows = NULL;
    int *subsets = NULL, *sizes = NULL, *idx = NULL, count = 0;
    float *x = NULL, *logits = NULL;
    moda_status s = be ? registry_open(reg_path, &reg, err, sizeof err) : MODA_ERR_BACKEND;
    if (s == MODA_OK) s = load_model(reg, model, be, data_dir, batch, &mo, err, sizeof err);
    if (s == MODA_OK && st_model) s = load_model(reg, st_model, be, data_dir, batch, &st, err, sizeof err);
    int k = mo.m.info.model.num_classes;
    if (s == MODA_OK && st_model && st.m.info.model.num_classes != k) {
        snprintf(err, sizeof err, "%s has %d classes, %s has %d", st_model, st.m.info.model.num_classes, model, k);
        s = MODA_ERR_ARG;
    }
    if (s == MODA_OK && !n_random && k > MAX_ALL_CLASSES) {
        snprintf(err, sizeof err, "%d classes have too many subsets for --tasks all; give a count", k);
        s = MODA_ERR_ARG;
    }
    if (s == MODA_OK) {
        subsets = make_subsets(k, n_random, seed, &count, &sizes);
        rows = calloc((size_t)k + 1, sizeof(*rows));
        idx = malloc((size_t)mo.test.n * sizeof(int));
        x = malloc((size_t)batch * mo.test.c * mo.test.h * mo.test.w * sizeof(float));
        logits = malloc((size_t)mo.test.n * k * sizeof(float));
        if (!subsets || !rows || !idx || !x || !logits) s = MODA_ERR_NOMEM;
    }
    double full_params = s == MODA_OK ? (double)graph_param_count(mo.m.g) : 1;
    double full_macs = s == MODA_OK ? graph_macs(mo.m.g) : 1;
    double t0 = progress_now();
    bool live = isatty(fileno(stderr));
    for (int t = 0; s == MODA_OK && t < count; t++) {
        const int *cls = subsets + (size_t)t * k;
        int nt = sizes[t], ns = 0;
        for (int i = 0; i < mo.test.n; i++)
            for (int j = 0; j < nt; j++)
                if (mo.test.labels[i] == cls[j]) idx[ns++] = i;
        compose_plan p;
        graph *c = NULL;
        s = compose_plan_make(mo.m.g, &mo.m.r, cls, nt, tau, &p);
        if (s == MODA_OK) s = compose_build(mo.m.g, &p, be, &c);
        if (s == MODA_OK) s = graph_plan(c, batch);
        if (s == MODA_OK) s = run_samples(c, &mo.test, idx, ns, batch, x, logits);
        if (s == MODA_OK) {
            long right = 0;
            for (int i = 0; i < ns; i++) {
                int best = 0, pos = 0;
                for (int j = 1; j < nt; j++)
                    if (logits[(size_t)i * nt + j] > logits[(size_t)i * nt + best]) best = j;
                for (int j = 0; j < nt; j++)
                    if (cls[j] == mo.test.labels[idx[i]]) pos = j;
                right += best == pos;
            }
            size_row *row = &rows[nt];
            row->tasks++;
            row->composed += ns ? (double)right / ns : 0;
            row->full_moda += sliced_accuracy(mo.logits, k, &mo.test, cls, nt);
            if (st_model) row->full_st += sliced_accuracy(st.logits, k, &st.test, cls, nt);
            row->size += (double)compose_plan_params(mo.m.g, &p) / full_params;
            row->flops += compose_plan_macs(mo.m.g, &p) / full_macs;
            if (live && ((t + 1) % 10 == 0 || t + 1 == count))
                fprintf(stderr, "\r%d/%d subsets, %.0f s\033[K", t + 1, count, progress_now() - t0);
        }
        graph_free(c);
        compose_plan_free(&p);
    }
    if (live && count) fprintf(stderr, "\r\033[K");
    if (s == MODA_OK) {
        double sum[5] = {0};
        printf("%s (tau %.2f), %d subsets%s, %.1f s\n\n%-6s %6s %10s %10s %10s %8s %8s\n", model, tau, count,
               n_random ? " (random)" : "", progress_now() - t0, "size", "tasks", "composed", "full MODA",
               st_model ? "full ST" : "-", "params", "FLOPs");
        for (int z = 2; z <= k; z++) {
            size_row *r = &rows[z];
            if (!r->tasks) continue;
            r->composed /= r->tasks;
            r->full_moda /= r->tasks;
            r->full_st /= r->tasks;
            r->size /= r->tasks;
            r->flops /= r->tasks;
            printf("%-6d %6d %9.2f%% %9.2f%% %9.2f%% %7.2f%% %7.2f%%\n", z, r->tasks, 100 * r->composed,
                   100 * r->full_moda, 100 * r->full_st, 100 * r->size, 100 * r->flops);
            double w = r->tasks;
            sum[0] += w * r->composed;
            sum[1] += w * r->full_moda;
            sum[2] += w * r->full_st;
            sum[3] += w * r->size;
            sum[4] += w * r->flops;
        }
        printf("%-6s %6d %9.2f%% %9.2f%% %9.2f%% %7.2f%% %7.2f%%\n", "all", count, 100 * sum[0] / count,
               100 * sum[1] / count, 100 * sum[2] / count, 100 * sum[3] / count, 100 * sum[4] / count);
        if (out) s = write_outputs(out, model, tau, rows, k, st_model != NULL, err, sizeof err);
    }
    free(subsets);
    free(sizes);
    free(rows);
    free(idx);
    free(x);
    free(logits);
    reuse_model_free(&mo);
    reuse_model_free(&st);
    registry_close(reg);
    backend_free(be);
    if (s != MODA_OK) {
        fprintf(stderr, "moda eval-reuse: %s\n", err[0] ? err : moda_status_string(s));
        return s == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    return 0;
}
