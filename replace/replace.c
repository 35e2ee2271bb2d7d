#include "replace.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compose.h"
#include "data_prep.h"
#include "fileio.h"

#define DEFAULT_BATCH 256

/* One split as both models see it: W's logits with column t, in `patched`,
 * replaced by the output of S's module for the same class. */
typedef struct split_logits {
    int n;
    int32_t *labels;  /* (n) */
    float *weak;      /* (n, K) W's logits */
    float *patched;   /* (n, K) the same, column t from S's module */
    float *module;    /* (n) the module's logit */
} split_logits;

static void split_free(split_logits *s) {
    free(s->labels);
    free(s->weak);
    free(s->patched);
    free(s->module);
    memset(s, 0, sizeof(*s));
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The run's state shared by its steps: the request and progress. */
typedef struct run {
    const replace_request *rq;
    replace_progress p;
    double t0;
    int calib_base; /* epochs of earlier layers, for the running count */
} run;

static bool report(run *r) {
    if (!r->rq->progress) return true;
    double dt = now_s() - r->t0;
    r->p.images_per_s = dt > 0 ? (double)r->p.done / dt : 0;
    return r->rq->progress(r->rq->ctx, &r->p);
}

bool replace_same_input(const registry_model *w, const registry_model *s, char *why, size_t whylen) {
    char d[400];
    if (model_info_same_input(&w->info, &s->info, d, sizeof d)) return true;
    snprintf(why, whylen, "%s and %s read different inputs: %s", w->name, s->name, d);
    return false;
}

/* Eval-mode outputs of g (planned for batch) over ds, with progress. */
static moda_status outputs(run *r, graph *g, const dataset *ds, int batch, float *out) {
    size_t per = (size_t)ds->c * ds->h * ds->w;
    int k = graph_output(g)->c;
    for (int off = 0; off < ds->n; off += batch) {
        int b = ds->n - off < batch ? ds->n - off : batch;
        MODA_TRY(graph_forward(g, ds->images + (size_t)off * per, b, false));
        MODA_TRY(backend_copy_to_host(g->be, out + (size_t)off * k, graph_output(g)->out.data,
                                      (size_t)b * k * sizeof(float)));
        r->p.done += b;
        if (!report(r)) return MODA_ERR_CANCELLED;
    }
    return MODA_OK;
}

/* One split of the data through W and S's module (both planned for
 * batch). The split is read once, for W, and checked against both
 * models' records. */
static moda_status load_split(run *r, graph *weak, graph *module, int t, dataset_split which, split_logits *out,
                              char *err, size_t errlen) {
    const replace_request *rq = r->rq;
    const registry_model *w = rq->weak, *s = rq->strong;
    memset(out, 0, sizeof(*out));
    dataset dw = {0}, ds = {0};
    const model_info *wi = &w->info, *si = &s->info;
    char where[DATASET_LOCATION_LEN + 64], why[400];
    moda_status st = model_data_read(&dw, &rq->data, w->name, wi, which, where, sizeof where, err, errlen);
    if (st == MODA_OK) st = model_data_verify(&dw, where, &rq->data, s->name, si, which, err, errlen);
    if (st == MODA_OK) st = dataset_select(&dw, &wi->selection, which, err, errlen); /* W's classes, relabelled */
    bool own = st == MODA_OK && !model_info_same_input(wi, si, why, sizeof why);
    if (own && (st = dataset_copy(&ds, &dw)) == MODA_OK)
        st = data_prepare_split(&ds, si->model.input_size, 0, si, err, errlen);
    if (st == MODA_OK) st = data_prepare_split(&dw, wi->model.input_size, 0, wi, err, errlen);
    const dataset *sd = own ? &ds : &dw;
    const int k = wi->model.num_classes, n = dw.n, batch = rq->batch > 0 ? rq->batch : DEFAULT_BATCH;
    if (st == MODA_OK) {
        out->n = n;
        out->labels = malloc((size_t)n * sizeof(int32_t));
        out->weak = malloc((size_t)n * k * sizeof(float));
        out->patched = malloc((size_t)n * k * sizeof(float));
        out->module = malloc((size_t)n * sizeof(float));
        if (!out->labels || !out->weak || !out->patched || !out->module) st = MODA_ERR_NOMEM;
    }
    if (st == MODA_OK) {
        /* Without a record of the data's size, the total grows as splits
         * are read. */
        if (r->p.total < r->p.done + 2L * n) r->p.total = r->p.done + 2L * n;
        r->p.phase = REPLACE_PHASE_FORWARD;
        r->p.split = which == DATASET_TRAIN ? "training" : "test";
        memcpy(out->labels, dw.labels, (size_t)n * sizeof(int32_t));
        st = outputs(r, weak, &dw, batch, out->weak);
        if (st == MODA_OK) st = outputs(r, module, sd, batch, out->module);
        if (st != MODA_OK && st != MODA_ERR_CANCELLED)
            snprintf(err, errlen, "running the models: %s", moda_status_string(st));
    }
    if (st == MODA_OK) {
        memcpy(out->patched, out->weak, (size_t)n * k * sizeof(float));
        for (int i = 0; i < n; i++) out->patched[(size_t)i * k + t] = out->module[i];
    }
    dataset_free(&dw);
    dataset_free(&ds);
    if (st != MODA_OK) split_free(out);
    return st;
}

/* Accuracy over the split and over its samples of class t, of logits
 * (or any scores) z. */
static void accuracy(const float *z, const split_logits *s, int k, int t, double *all, double *of_t) {
    long right = 0, right_t = 0, n_t = 0;
    for (int i = 0; i < s->n; i++) {
        const float *row = z + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (row[j] > row[best]) best = j;
        right += best == s->labels[i];
        if (s->labels[i] == t) {
            n_t++;
            right_t += best == t;
        }
    }
    *all = s->n ? 100.0 * right / s->n : 0;
    *of_t = n_t ? 100.0 * right_t / n_t : 0;
}

/* CNNSplitter's strategy on test: W's softmax, with t's probability
 * replaced by the module's logit scaled to [0, 1] by its range on train. */
static moda_status baseline(const split_logits *train, const split_logits *test, int k, int t, double *all,
                            double *of_t) {
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < train->n; i++) {
        lo = fminf(lo, train->module[i]);
        hi = fmaxf(hi, train->module[i]);
    }
    float *z = malloc((size_t)test->n * k * sizeof(float));
    if (!z) return MODA_ERR_NOMEM;
    for (int i = 0; i < test->n; i++) {
        const float *l = test->weak + (size_t)i * k;
        float *p = z + (size_t)i * k, mx = l[0];
        double sum = 0;
        for (int j = 1; j < k; j++) mx = fmaxf(mx, l[j]);
        for (int j = 0; j < k; j++) sum += p[j] = expf(l[j] - mx);
        for (int j = 0; j < k; j++) p[j] = (float)(p[j] / sum);
        p[t] = hi > lo ? (test->module[i] - lo) / (hi - lo) : 0.5f;
    }
    accuracy(z, test, k, t, all, of_t);
    free(z);
    return MODA_OK;
}

static bool on_epoch(void *ctx, int epoch, double loss) {
    run *r = ctx;
    r->p.phase = REPLACE_PHASE_CALIBRATE;
    r->p.epoch = r->calib_base + epoch + 1;
    r->p.loss = loss;
    return report(r);
}

/* Train a calibration layer on train's logits (patched or W's own) and
 * report it on test; the layer is kept in *keep when given. */
static moda_status calibrate_and_score(run *r, const split_logits *train, const split_logits *test, bool patched,
                                       int k, int t, double *all, double *of_t, double *loss, calibration *keep) {
    calibration c;
    calibration_options o = r->rq->calib;
    o.on_epoch = on_epoch;
    o.ctx = r;
    MODA_TRY(calibration_init(&c, k, o.seed));
    moda_status s = calibration_train(&c, patched ? train->patched : train->weak, train->labels, train->n, &o, loss);
    r->calib_base += o.epochs;
    float *z = s == MODA_OK ? malloc((size_t)test->n * k * sizeof(float)) : NULL;
    if (s == MODA_OK && !z) s = MODA_ERR_NOMEM;
    if (s == MODA_OK) {
        calibration_apply(&c, patched ? test->patched : test->weak, test->n, z);
        accuracy(z, test, k, t, all, of_t);
    }
    free(z);
    if (s == MODA_OK && keep) *keep = c;
    else calibration_free(&c);
    return s;
}

void replace_result_free(replace_result *r) {
    if (!r) return;
    calibration_free(&r->layer);
}

/* The classes: t in W, ts in S by t's name; both models of one dataset. */
static moda_status resolve_classes(const replace_request *rq, int *t, int *ts, char *err, size_t errlen) {
    const registry_model *w = rq->weak, *s = rq->strong;
    const int k = w->info.model.num_classes;
    char why[512] = "";
    if ((*t = class_resolve(rq->cls, w->info.class_names, k, why, sizeof why)) < 0)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: %s", w->name, why);
    *ts = -1;
    for (int c = 0; c < s->info.model.num_classes; c++)
        if (!strcmp(s->info.class_names[c], w->info.class_names[*t])) *ts = c;
    if (*ts < 0)
        return fileio_fail(err, errlen, MODA_ERR_NOT_FOUND, "%s has no class named \"%s\" to take the module from",
                           s->name, w->info.class_names[*t]);
    if (strcmp(w->info.dataset, s->info.dataset) != 0)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s was trained on %s and %s on %s: they must share a dataset",
                           w->name, w->info.dataset, s->name, s->info.dataset);
    return MODA_OK;
}

moda_status replace_run(const replace_request *rq, replace_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof(*res));
    if (!rq || !rq->weak || !rq->strong || !rq->cls || !rq->be) return MODA_ERR_NULL;
    run r = {.rq = rq, .t0 = now_s()};
    const registry_model *w = rq->weak, *s = rq->strong;
    const int k = w->info.model.num_classes, batch = rq->batch > 0 ? rq->batch : DEFAULT_BATCH;
    int t = -1, ts = -1;
    MODA_TRY(resolve_classes(rq, &t, &ts, err, errlen));
    compose_plan p = {0};
    graph *module = NULL, *weak = NULL;
    split_logits train = {0}, test = {0};
    r.p.phase = REPLACE_PHASE_LOAD;
    r.p.epochs = 2 * rq->calib.epochs;
    moda_status st = report(&r) ? MODA_OK : MODA_ERR_CANCELLED;
    if (st == MODA_OK) {
        st = compose_plan_make(s->g, &s->r, &ts, 1, rq->tau, &p);
        if (st == MODA_OK) st = compose_build(s->g, &p, rq->be, &module);
        if (st == MODA_OK && !(weak = graph_share(w->g, rq->be))) st = MODA_ERR_NOMEM;
        if (st == MODA_OK) st = graph_plan_inference(weak, batch);
        if (st == MODA_OK) st = graph_plan_inference(module, batch);
        if (st != MODA_OK)
            snprintf(err, errlen, "composing %s's module for class %d: %s", s->name, ts, moda_status_string(st));
    }
    if (st == MODA_OK) {
        /* Both splits' sizes for the progress total: W's records (which
         * count the splits before a class selection, so not with one),
         * else the count becomes known split by split. */
        if (!w->info.selection.present)
            r.p.total = 2L * (w->info.data.split[DATASET_TRAIN].samples + w->info.data.split[DATASET_TEST].samples);
        st = load_split(&r, weak, module, t, DATASET_TRAIN, &train, err, errlen);
    }
    if (st == MODA_OK) st = load_split(&r, weak, module, t, DATASET_TEST, &test, err, errlen);
    if (st == MODA_OK) {
        res->cls = t;
        res->strong_cls = ts;
        snprintf(res->class_name, sizeof res->class_name, "%s", w->info.class_names[t]);
        res->module_params = (double)compose_plan_params(s->g, &p) / (double)graph_param_count(s->g);
        res->k = k;
        res->train_n = train.n;
        res->test_n = test.n;
        for (int i = 0; i < test.n; i++) res->test_class_n += test.labels[i] == t;
        accuracy(test.weak, &test, k, t, &res->acc[REPLACE_WEAK][0], &res->acc[REPLACE_WEAK][1]);
        accuracy(test.patched, &test, k, t, &res->acc[REPLACE_PATCHED][0], &res->acc[REPLACE_PATCHED][1]);
        st = baseline(&train, &test, k, t, &res->acc[REPLACE_BASELINE][0], &res->acc[REPLACE_BASELINE][1]);
        double *a = res->acc[REPLACE_WEAK_CALIBRATED], *b = res->acc[REPLACE_PATCHED_CALIBRATED];
        if (st == MODA_OK)
            st = calibrate_and_score(&r, &train, &test, false, k, t, &a[0], &a[1], &res->loss[0], NULL);
        if (st == MODA_OK)
            st = calibrate_and_score(&r, &train, &test, true, k, t, &b[0], &b[1], &res->loss[1], &res->layer);
        if (st != MODA_OK && st != MODA_ERR_CANCELLED)
            snprintf(err, errlen, "training the calibration layer: %s", moda_status_string(st));
    }
    if (st == MODA_ERR_CANCELLED) snprintf(err, errlen, "cancelled");
    split_free(&train);
    split_free(&test);
    graph_free(module);
    graph_free(weak);
    compose_plan_free(&p);
    if (st != MODA_OK) replace_result_free(res);
    return st;
}

moda_status replace_save(const char *root, const char *name, const replace_request *rq, const replace_result *res,
                         char *err, size_t errlen) {
    if (!root || !name || !rq || !res || !res->layer.w) return MODA_ERR_NULL;
    registry_patch p = {
        .weak_class = res->cls,
        .strong_class = res->strong_cls,
        .tau = rq->tau,
        .module_params = res->module_params,
        .epochs = rq->calib.epochs,
        .batch_size = rq->calib.batch,
        .lr = rq->calib.lr,
        .seed = rq->calib.seed,
        .train_samples = res->train_n,
    };
    snprintf(p.optimizer, sizeof p.optimizer, "%s", calibration_optimizer_name(rq->calib.optimizer));
    const dataset_record *rec = &rq->weak->info.data;
    if (rec->present) snprintf(p.train_sha256, sizeof p.train_sha256, "%s", rec->split[DATASET_TRAIN].sha256);
    memcpy(p.acc, res->acc, sizeof p.acc);
    return registry_write_patched(root, name, rq->weak, rq->strong, &p, res->layer.w, res->layer.b, err, errlen);
}
