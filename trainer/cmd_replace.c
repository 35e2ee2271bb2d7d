#include "cmd_replace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "calibration.h"
#include "cli.h"
#include "cli_env.h"
#include "cmd_compose.h"
#include "compose.h"
#include "model_data.h"
#include "progress.h"
#include "registry.h"
#include "train.h"

#define BATCH 256

/* One split as both models see it: W's logits with column t, in `patched`,
 * replaced by the output of S's module for the same class. */
typedef struct split_logits {
    int n;
    int32_t *labels;  /* (n) */
    float *weak;      /* (n, K) W's logits */
    float *patched;   /* (n, K) the same, column t from S's module */
} split_logits;

static void split_free(split_logits *s) {
    free(s->labels);
    free(s->weak);
    free(s->patched);
    memset(s, 0, sizeof(*s));
}

/* Whether S reads its input exactly as W does, so one copy of the data
 * serves both. */
static bool same_input(const model_info *a, const model_info *b) {
    if (a->model.input_size != b->model.input_size || a->channels != b->channels || a->pad != b->pad) return false;
    for (int c = 0; c < a->channels; c++)
        if (a->mean[c] != b->mean[c] || a->std[c] != b->std[c]) return false;
    return true;
}

/* One split of the data through W and S's module (both planned for
 * BATCH), as each model prepares its input. The split is read once, for
 * W, and checked against both models' records. */
static moda_status load_split(const registry_model *w, const registry_model *s, graph *module, int t,
                              const model_data_options *data, dataset_split which, split_logits *out, char *err,
                              size_t errlen) {
    memset(out, 0, sizeof(*out));
    dataset dw = {0}, ds = {0};
    const model_info *wi = &w->info, *si = &s->info;
    char where[DATASET_LOCATION_LEN + 64];
    moda_status st = model_data_read(&dw, data, w->name, wi, which, where, sizeof where, err, errlen);
    if (st == MODA_OK) st = model_data_verify(&dw, where, data, s->name, si, which, err, errlen);
    bool own = st == MODA_OK && !same_input(wi, si);
    if (own && (st = dataset_copy(&ds, &dw)) == MODA_OK)
        st = train_prepare_split(&ds, si->model.input_size, 0, si, err, errlen);
    if (st == MODA_OK) st = train_prepare_split(&dw, wi->model.input_size, 0, wi, err, errlen);
    const dataset *sd = own ? &ds : &dw;
    const char *what = which == DATASET_TRAIN ? "training" : "test";
    const int k = wi->model.num_classes, n = dw.n;
    float *mod = NULL;
    if (st == MODA_OK) {
        out->n = n;
        out->labels = malloc((size_t)n * sizeof(int32_t));
        out->weak = malloc((size_t)n * k * sizeof(float));
        out->patched = malloc((size_t)n * k * sizeof(float));
        mod = malloc((size_t)n * sizeof(float));
        if (!out->labels || !out->weak || !out->patched || !mod) st = MODA_ERR_NOMEM;
    }
    double t0 = progress_now();
    if (st == MODA_OK) {
        fprintf(stderr, "%s: %d %s images through %s and %s's module...\n", what, n, what, w->name, s->name);
        memcpy(out->labels, dw.labels, (size_t)n * sizeof(int32_t));
        st = evaluate_outputs(w->g, &dw, BATCH, out->weak, 0, NULL);
        if (st == MODA_OK) st = evaluate_outputs(module, sd, BATCH, mod, 0, NULL);
        if (st != MODA_OK) snprintf(err, errlen, "running the models: %s", moda_status_string(st));
    }
    if (st == MODA_OK) {
        memcpy(out->patched, out->weak, (size_t)n * k * sizeof(float));
        for (int i = 0; i < n; i++) out->patched[(size_t)i * k + t] = mod[i];
        fprintf(stderr, "%s: done in %.1f s\n", what, progress_now() - t0);
    }
    free(mod);
    dataset_free(&dw);
    dataset_free(&ds);
    if (st != MODA_OK) split_free(out);
    return st;
}

/* Accuracy over the split and over its samples of class t, of logits z. */
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

/* Train a calibration layer on train's logits (patched or W's own) and
 * report it on test. */
static moda_status calibrate_and_score(const split_logits *train, const split_logits *test, bool patched, int k,
                                       int t, const calibration_options *o, double *all, double *of_t, double *loss) {
    calibration c;
    MODA_TRY(calibration_init(&c, k, o->seed));
    moda_status s = calibration_train(&c, patched ? train->patched : train->weak, train->labels, train->n, o, loss);
    float *z = s == MODA_OK ? malloc((size_t)test->n * k * sizeof(float)) : NULL;
    if (s == MODA_OK && !z) s = MODA_ERR_NOMEM;
    if (s == MODA_OK) {
        calibration_apply(&c, patched ? test->patched : test->weak, test->n, z);
        accuracy(z, test, k, t, all, of_t);
    }
    free(z);
    calibration_free(&c);
    return s;
}

moda_status replace_run(const replace_options *o, replace_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof(*res));
    moda_backend *be = backend_cpu_new();
    registry *reg = NULL, *sreg = NULL;
    registry_model w = {0}, s = {0};
    compose_plan p = {0};
    graph *module = NULL;
    split_logits train = {0}, test = {0};
    int t = -1, ts = -1;
    moda_status st = be ? registry_open(o->reg, &o->remote, &reg, err, errlen) : MODA_ERR_BACKEND;
    if (st == MODA_OK) st = registry_load_model(reg, o->weak, be, &w, err, errlen);
    if (st == MODA_OK && o->strong_reg) st = registry_open(o->strong_reg, &o->remote, &sreg, err, errlen);
    if (st == MODA_OK) st = registry_load_model(sreg ? sreg : reg, o->strong, be, &s, err, errlen);
    const int k = w.info.model.num_classes;
    char why[ERR_LEN] = "";
    if (st == MODA_OK && (t = resolve_class(o->cls, w.info.class_names, k, why, sizeof why)) < 0) {
        snprintf(err, errlen, "%s: %s", w.name, why);
        st = MODA_ERR_ARG;
    }
    for (int c = 0; st == MODA_OK && c < s.info.model.num_classes; c++)
        if (!strcmp(s.info.class_names[c], w.info.class_names[t])) ts = c;
    if (st == MODA_OK && ts < 0) {
        snprintf(err, errlen, "%s has no class named \"%s\" to take the module from", s.name, w.info.class_names[t]);
        st = MODA_ERR_NOT_FOUND;
    }
    if (st == MODA_OK && strcmp(w.info.dataset, s.info.dataset) != 0) {
        snprintf(err, errlen, "%s was trained on %s and %s on %s: they must share a dataset", w.name, w.info.dataset,
                 s.name, s.info.dataset);
        st = MODA_ERR_ARG;
    }
    if (st == MODA_OK) {
        st = compose_plan_make(s.g, &s.r, &ts, 1, o->tau, &p);
        if (st == MODA_OK) st = compose_build(s.g, &p, be, &module);
        if (st == MODA_OK) st = graph_plan_inference(w.g, BATCH);
        if (st == MODA_OK) st = graph_plan_inference(module, BATCH);
        if (st != MODA_OK)
            snprintf(err, errlen, "composing %s's module for class %d: %s", s.name, ts, moda_status_string(st));
    }
    const model_data_options data = {.kind = o->dataset, .data_dir = o->data_dir, .log = stderr};
    if (st == MODA_OK) st = load_split(&w, &s, module, t, &data, DATASET_TRAIN, &train, err, errlen);
    if (st == MODA_OK) st = load_split(&w, &s, module, t, &data, DATASET_TEST, &test, err, errlen);
    if (st == MODA_OK) {
        res->cls = t;
        snprintf(res->class_name, sizeof res->class_name, "%s", w.info.class_names[t]);
        res->module_params = (double)compose_plan_params(s.g, &p) / (double)graph_param_count(s.g);
        res->k = k;
        res->train_n = train.n;
        accuracy(test.weak, &test, k, t, &res->acc[REPLACE_WEAK][0], &res->acc[REPLACE_WEAK][1]);
        accuracy(test.patched, &test, k, t, &res->acc[REPLACE_PATCHED][0], &res->acc[REPLACE_PATCHED][1]);
        double *a = res->acc[REPLACE_WEAK_CALIBRATED], *b = res->acc[REPLACE_PATCHED_CALIBRATED];
        st = calibrate_and_score(&train, &test, false, k, t, &o->calib, &a[0], &a[1], &res->loss[0]);
        if (st == MODA_OK) st = calibrate_and_score(&train, &test, true, k, t, &o->calib, &b[0], &b[1], &res->loss[1]);
        if (st != MODA_OK) snprintf(err, errlen, "training the calibration layer: %s", moda_status_string(st));
    }
    split_free(&train);
    split_free(&test);
    graph_free(module);
    compose_plan_free(&p);
    registry_model_free(&w);
    registry_model_free(&s);
    registry_close(reg);
    registry_close(sreg);
    backend_free(be);
    return st;
}

static void print_result(const replace_options *o, const replace_result *r) {
    printf("class %d \"%s\" of %s replaced by %s's module for it (tau %.2f: %.2f%% of %s's parameters)\n", r->cls,
           r->class_name, o->weak, o->strong, o->tau, 100.0 * r->module_params, o->strong);
    printf("calibration: %dx%d linear, %d epochs of Adam (lr %g, batch %d) on %d training images\n\n", r->k, r->k,
           o->calib.epochs, o->calib.lr, o->calib.batch, r->train_n);
    printf("%-34s %10s %12s\n", "test set", "accuracy", "on the class");
    const char *rows[REPLACE_ROWS] = {"weak model", "patched", "weak model, calibrated", "patched, calibrated"};
    for (int i = 0; i < REPLACE_ROWS; i++) printf("%-34s %9.2f%% %11.2f%%\n", rows[i], r->acc[i][0], r->acc[i][1]);
    printf("\nfinal training loss: calibrated %.4f, patched and calibrated %.4f\n", r->loss[0], r->loss[1]);
}

int cmd_replace(int argc, char **argv) {
    replace_options o = {.tau = DECOMPOSE_DEFAULT_TAU, .calib = calibration_options_default()};
    bool help = false;
    const arg_spec specs[] = {
        {"registry", ARG_STRING, &o.reg, "DIR|URL", "module registry holding both models"},
        {"strong-registry", ARG_STRING, &o.strong_reg, "DIR|URL", "the strong model's, if not the same"},
        {"weak", ARG_STRING, &o.weak, "NAME", "the model whose class is replaced"},
        {"strong", ARG_STRING, &o.strong, "NAME", "the model the module comes from (MODA-trained)"},
        {"class", ARG_STRING, &o.cls, "C", "the class to replace: a name of the weak model's, or its index"},
        {"tau", ARG_FLOAT, &o.tau, "T", "activation-rate threshold of the module (0.9)"},
        {"epochs", ARG_INT, &o.calib.epochs, "N", "calibration epochs (3)"},
        {"lr", ARG_FLOAT, &o.calib.lr, "LR", "calibration learning rate, Adam (0.01)"},
        {"batch-size", ARG_INT, &o.calib.batch, "N", "calibration batch size (128)"},
        {"seed", ARG_U64, &o.calib.seed, "N", "seed of the calibration layer and its sample order (0)"},
        {"data-dir", ARG_STRING, &o.data_dir, "DIR", "dataset directory (default: the weak model's recorded one)"},
        {"dataset", ARG_STRING, &o.dataset, "D", "the dataset's kind; must be the one trained on (default: it)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    bool ok = args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help);
    const char *why = !ok || help                                     ? NULL
                      : !o.reg || !o.weak || !o.strong || !o.cls      ? "--registry, --weak, --strong and --class are required"
                      : !(o.tau >= 0 && o.tau <= 1)                   ? "--tau must be in [0, 1]"
                      : o.calib.epochs < 1 || o.calib.batch < 1       ? "--epochs and --batch-size must be positive"
                      : !(o.calib.lr > 0)                             ? "--lr must be positive"
                                                                      : NULL;
    if (!ok || help || why) {
        FILE *f = help ? stdout : stderr;
        if (why) fprintf(stderr, "moda replace: %s\n", why);
        fprintf(f, "usage: moda replace --registry R --weak W --strong S --class C [options]\n\n"
                   "Replaces class C's logit of model W by the output of model S's module for the\n"
                   "same class, then trains a KxK calibration layer on W's training data with W and\n"
                   "S frozen. Reports test accuracy, overall and on C, of W, of W patched, and of\n"
                   "both calibrated (W calibrated alone is the control: what calibration gives\n"
                   "without the module).\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    char err[ERR_LEN] = "";
    o.remote = cli_env_registry_options();
    replace_result r;
    moda_status st = replace_run(&o, &r, err, sizeof err);
    if (st != MODA_OK) {
        fprintf(stderr, "moda replace: %s\n", err[0] ? err : moda_status_string(st));
        return st == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    print_result(&o, &r);
    return 0;
}
