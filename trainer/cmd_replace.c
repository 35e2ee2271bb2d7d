#include "cmd_replace.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "cli_env.h"
#include "fileio.h"

/* Opens the registries, loads both models and runs the replacement. */
moda_status replace_cli_run(const replace_options *o, replace_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof(*res));
    moda_backend *be = backend_cpu_new();
    registry *reg = NULL, *sreg = NULL;
    registry_model w = {0}, s = {0};
    moda_status st = be ? MODA_OK : MODA_ERR_BACKEND;
    if (o->save && registry_is_url(o->reg))
        st = fileio_fail(err, errlen, MODA_ERR_ARG, "--save: %s is behind a URL and read-only; use a registry directory",
                         o->reg);
    if (o->save && (!strcmp(o->save, o->weak) || !strcmp(o->save, o->strong)))
        st = fileio_fail(err, errlen, MODA_ERR_ARG, "--save %s would replace one of the patched model's parents",
                         o->save);
    if (o->save && o->strong_reg)
        st = fileio_fail(err, errlen, MODA_ERR_ARG,
                         "--save needs both models in one registry: a patched model refers to its parents by name");
    if (st == MODA_OK) st = registry_open(o->reg, &o->remote, &reg, err, errlen);
    if (st == MODA_OK) st = registry_load_model(reg, o->weak, be, &w, err, errlen);
    if (st == MODA_OK && o->strong_reg) st = registry_open(o->strong_reg, &o->remote, &sreg, err, errlen);
    if (st == MODA_OK) st = registry_load_model(sreg ? sreg : reg, o->strong, be, &s, err, errlen);
    if (st == MODA_OK) {
        replace_request rq = {
            .weak = &w,
            .strong = &s,
            .cls = o->cls,
            .tau = o->tau,
            .calib = o->calib,
            .data = {.kind = o->dataset, .data_dir = o->data_dir, .log = stderr},
            .be = be,
            .progress = o->progress,
            .ctx = o->ctx,
        };
        st = replace_run(&rq, res, err, errlen);
        if (st == MODA_OK && o->save) st = replace_save(registry_root(reg), o->save, &rq, res, err, errlen);
        if (st != MODA_OK) replace_result_free(res);
    }
    registry_model_free(&w);
    registry_model_free(&s);
    registry_close(reg);
    registry_close(sreg);
    backend_free(be);
    return st;
}

/* Progress on stderr: each split when both models are through it, then
 * each calibration epoch. */
static bool print_progress(void *ctx, const replace_progress *p) {
    (void)ctx;
    static const char *last_split = NULL;
    if (p->phase == REPLACE_PHASE_FORWARD && p->split != last_split) {
        last_split = p->split;
        fprintf(stderr, "%s data through both models...\n", p->split);
    } else if (p->phase == REPLACE_PHASE_CALIBRATE) {
        fprintf(stderr, "calibration: epoch %d/%d, loss %.4f (%.0f images/s through the models)\n", p->epoch,
                p->epochs, p->loss, p->images_per_s);
    }
    return true;
}

static void print_result(const replace_options *o, const replace_result *r) {
    printf("class %d \"%s\" of %s replaced by %s's module for it (tau %.2f: %.2f%% of %s's parameters)\n", r->cls,
           r->class_name, o->weak, o->strong, o->tau, 100.0 * r->module_params, o->strong);
    printf("calibration: %dx%d linear, %d epochs of %s (lr %g, batch %d) on %d training images\n\n", r->k, r->k,
           o->calib.epochs, o->calib.optimizer == CALIBRATION_SGD ? "SGD (Nesterov, cosine)" : "Adam", o->calib.lr,
           o->calib.batch, r->train_n);
    printf("%-34s %10s %12s\n", "test set", "accuracy", "on the class");
    const char *rows[REPLACE_ROWS] = {"weak model", "patched", "weak model, calibrated", "patched, calibrated",
                                      "baseline (softmax, min-max module)"};
    for (int i = 0; i < REPLACE_ROWS; i++) printf("%-34s %9.2f%% %11.2f%%\n", rows[i], r->acc[i][0], r->acc[i][1]);
    printf("\nfinal training loss: calibrated %.4f, patched and calibrated %.4f\n", r->loss[0], r->loss[1]);
}

/* Accuracy over the test samples of the other classes, from the overall
 * and the class's accuracy (both in %). */
static double other_accuracy(const replace_result *r, const double acc[2]) {
    int others = r->test_n - r->test_class_n;
    return others > 0 ? (acc[0] * r->test_n - acc[1] * r->test_class_n) / others : 0;
}

/* The result as one JSON object on stdout, for scripts. */
static int print_json(const replace_options *o, const replace_result *r) {
    static const char *const keys[REPLACE_ROWS] = {"weak", "patched", "weak_calibrated", "patched_calibrated",
                                                   "baseline"};
    json_t *rows = json_object();
    for (int i = 0; rows && i < REPLACE_ROWS; i++)
        json_object_set_new(rows, keys[i],
                            json_pack("{sf,sf,sf}", "accuracy", r->acc[i][0], "class_accuracy", r->acc[i][1],
                                      "other_accuracy", other_accuracy(r, r->acc[i])));
    json_t *root = json_pack(
        "{ss,ss,s{ss,si,si},sf,sf,s{si,ss,sf,si,sI},s{si,si,si},si,so,s{sf,sf}}", "weak", o->weak, "strong",
        o->strong, "class", "name", r->class_name, "weak_index", r->cls, "strong_index", r->strong_cls, "tau",
        (double)o->tau, "module_params", r->module_params, "calibration", "epochs", o->calib.epochs, "optimizer",
        o->calib.optimizer == CALIBRATION_SGD ? "sgd" : "adam", "lr", (double)o->calib.lr, "batch_size",
        o->calib.batch, "seed", (json_int_t)o->calib.seed, "samples", "train", r->train_n, "test", r->test_n,
        "test_class", r->test_class_n, "k", r->k, "accuracy", rows, "final_loss", "weak_calibrated", r->loss[0],
        "patched_calibrated", r->loss[1]);
    if (root && o->save) json_object_set_new(root, "saved", json_string(o->save)); /* the patched model's name */
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(root);
    if (!text) {
        fprintf(stderr, "moda replace: cannot encode the result as JSON\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

int cmd_replace(int argc, char **argv) {
    replace_options o = {.tau = DECOMPOSE_DEFAULT_TAU, .calib = calibration_options_default()};
    bool help = false, json = false;
    const char *optimizer = "adam";
    const arg_spec specs[] = {
        {"registry", ARG_STRING, &o.reg, "DIR|URL", "module registry holding both models"},
        {"strong-registry", ARG_STRING, &o.strong_reg, "DIR|URL", "the strong model's, if not the same"},
        {"weak", ARG_STRING, &o.weak, "NAME", "the model whose class is replaced"},
        {"strong", ARG_STRING, &o.strong, "NAME", "the model the module comes from (MODA-trained)"},
        {"class", ARG_STRING, &o.cls, "C", "the class to replace: a name of the weak model's, or its index"},
        {"tau", ARG_FLOAT, &o.tau, "T", "activation-rate threshold of the module (0.9)"},
        {"epochs", ARG_INT, &o.calib.epochs, "N", "calibration epochs (3)"},
        {"optimizer", ARG_STRING, &optimizer, "adam|sgd", "calibration optimiser (adam); sgd: Nesterov, cosine"},
        {"lr", ARG_FLOAT, &o.calib.lr, "LR", "calibration learning rate (0.01)"},
        {"batch-size", ARG_INT, &o.calib.batch, "N", "calibration batch size (128)"},
        {"seed", ARG_U64, &o.calib.seed, "N", "seed of the calibration layer and its sample order (0)"},
        {"data-dir", ARG_STRING, &o.data_dir, "DIR", "dataset directory (default: the weak model's recorded one)"},
        {"dataset", ARG_STRING, &o.dataset, "D", "the dataset's kind; must be the one trained on (default: it)"},
        {"save", ARG_STRING, &o.save, "NAME", "store the patched model in the registry under NAME"},
        {"json", ARG_BOOL, &json, NULL, "print the result as JSON: every row's accuracy overall, on the class and "
                                        "on the other classes"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    bool ok = args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help);
    const char *why = !ok || help                                     ? NULL
                      : !o.reg || !o.weak || !o.strong || !o.cls      ? "--registry, --weak, --strong and --class are required"
                      : !(o.tau >= 0 && o.tau <= 1)                   ? "--tau must be in [0, 1]"
                      : o.calib.epochs < 1 || o.calib.batch < 1       ? "--epochs and --batch-size must be positive"
                      : !(o.calib.lr > 0)                             ? "--lr must be positive"
                      : !calibration_optimizer_parse(optimizer, &o.calib.optimizer) ? "--optimizer must be adam or sgd"
                      : o.save && !registry_name_valid(o.save)
                          ? "--save must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with '.'"
                                                                      : NULL;
    if (!ok || help || why) {
        FILE *f = help ? stdout : stderr;
        if (why) fprintf(stderr, "moda replace: %s\n", why);
        fprintf(f, "usage: moda replace --registry R --weak W --strong S --class C [options]\n\n"
                   "Replaces class C's logit of model W by the output of model S's module for the\n"
                   "same class, then trains a KxK calibration layer on W's training data with W and\n"
                   "S frozen. Reports test accuracy, overall and on C, of W, of W patched, and of\n"
                   "both calibrated (W calibrated alone is the control: what calibration gives\n"
                   "without the module), and CNNSplitter's untrained strategy as a baseline.\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    char err[ERR_LEN] = "";
    o.remote = cli_env_registry_options();
    o.progress = print_progress;
    replace_result r;
    moda_status st = replace_cli_run(&o, &r, err, sizeof err);
    if (st != MODA_OK) {
        fprintf(stderr, "moda replace: %s\n", err[0] ? err : moda_status_string(st));
        return st == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    int rc = 0;
    if (json) {
        rc = print_json(&o, &r);
    } else {
        print_result(&o, &r);
        if (o.save)
            printf("\nsaved as %s in %s (serve it, or 'moda eval --registry %s --model %s')\n", o.save, o.reg,
                   o.reg, o.save);
    }
    replace_result_free(&r);
    return rc;
}
