#include "cmd_registry.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "cli_env.h"
#include "compose.h"
#include "decompose.h"
#include "model_data.h"
#include "progress.h"
#include "registry.h"
#include "train.h"

/* ---- moda decompose ------------------------------------------------------ */

/* The per-class subset the checkpoint was trained on (0: all). */
static int read_subset(const char *meta_json) {
    json_t *root = json_loads(meta_json, 0, NULL);
    int subset = (int)json_integer_value(json_object_get(json_object_get(root, "data"), "subset"));
    json_decref(root);
    return subset;
}

/* The checkpoint directory's name, e.g. runs/vgg-moda/checkpoint.safetensors
 * gives "vgg-moda"; a bare file name uses the current directory's name.
 * Empty when there is none. */
static void default_model_name(const char *ckpt, char *out, size_t len) {
    char dir[PATH_MAX];
    out[0] = '\0';
    const char *slash = strrchr(ckpt, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - ckpt), ckpt);
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    if (!strcmp(base, ".")) {
        if (!getcwd(dir, sizeof dir)) return;
        base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    }
    snprintf(out, len, "%s", base);
}

/* A live progress line for the activation-rate pass on a terminal. */
static void rates_progress(int done, int total, void *ctx) {
    FILE *log = ctx;
    fprintf(log, "\ractivation rates: %d/%d training images (%d%%)\033[K", done, total, (int)(100.0 * done / total));
    fflush(log);
}

static moda_status rates_with_progress(graph *g, const dataset *ds, int batch, rates *r, FILE *log) {
    bool live = log && isatty(fileno(log));
    double start = progress_now();
    MODA_TRY(decompose_rates(g, ds, batch, r, live ? rates_progress : NULL, log));
    if (live) fprintf(log, "\r\033[K");
    if (log)
        fprintf(log, "activation rates: %d training images, %d tracked layers, %.1f s\n", ds->n, r->n_layers,
                progress_now() - start);
    return MODA_OK;
}

typedef struct decompose_options {
    const char *ckpt, *out, *name;
    model_data_options data;
    float tau;
    int batch;
} decompose_options;

static moda_status run_decompose(const decompose_options *o, const char *name, char *err, size_t errlen) {
    moda_backend *be = backend_cpu_new();
    if (!be) {
        snprintf(err, errlen, "cannot create the CPU backend");
        return MODA_ERR_BACKEND;
    }
    checkpoint ck;
    dataset train = {0}, test = {0};
    rates r = {0};
    module_stats st = {0};
    eval_result ev = {0};
    moda_status s = checkpoint_open(o->ckpt, be, &ck, err, errlen);
    if (s != MODA_OK) {
        backend_free(be);
        return s;
    }
    /* The training split exactly as the model saw it: same files, same
     * per-class subset, its normalisation, no augmentation. */
    const model_info *mi = &ck.info;
    s = model_data_load(&train, &o->data, o->ckpt, mi, DATASET_TRAIN, read_subset(ck.meta_json), err, errlen);
    if (s == MODA_OK) s = graph_plan(ck.g, o->batch);
    if (s == MODA_OK) s = rates_alloc(&r, ck.g, mi->model.num_classes);
    if (s == MODA_OK) {
        fprintf(stderr, "%s: %s width %g, %d classes; computing activation rates over %d training images\n",
                o->ckpt, model_arch_name(mi->model.arch), mi->model.width, mi->model.num_classes, train.n);
        s = rates_with_progress(ck.g, &train, o->batch, &r, stderr);
        if (s != MODA_OK && !err[0]) snprintf(err, errlen, "activation rates: %s", moda_status_string(s));
    }
    dataset_free(&train);
    if (s == MODA_OK)
        s = model_data_load(&test, &o->data, o->ckpt, mi, DATASET_TEST, 0, err, errlen);
    if (s == MODA_OK) {
        s = evaluate(ck.g, &test, o->batch, &ev);
        if (s != MODA_OK) snprintf(err, errlen, "evaluation: %s", moda_status_string(s));
    }
    if (s == MODA_OK) {
        s = module_stats_compute(ck.g, &r, o->tau, &st);
        if (s != MODA_OK) snprintf(err, errlen, "module stats: %s", moda_status_string(s));
    }
    if (s == MODA_OK) s = registry_write_model(o->out, name, ck.g, mi, ck.meta_json, ev.acc, &r, &st, err, errlen);
    if (s == MODA_OK) {
        printf("wrote model \"%s\" to %s\n", name, o->out);
        printf("  %s width %g, %d classes, test accuracy %.2f%% (%d images)\n", model_arch_name(mi->model.arch),
               mi->model.width, mi->model.num_classes, 100 * ev.acc, test.n);
        printf("  at tau %.2f: mean module size %.2f%%, mean overlap %.2f%% of %zu parameters\n", o->tau,
               100 * st.mean_size, 100 * st.mean_overlap, graph_param_count(ck.g));
    }
    module_stats_free(&st);
    eval_result_free(&ev);
    rates_free(&r);
    dataset_free(&test);
    checkpoint_close(&ck);
    backend_free(be);
    return s;
}

int cmd_decompose(int argc, char **argv) {
    decompose_options o = {.tau = DECOMPOSE_DEFAULT_TAU, .batch = 256, .data = {.log = stderr}};
    bool help = false;
    const arg_spec specs[] = {
        {"checkpoint", ARG_STRING, &o.ckpt, "FILE", "checkpoint.safetensors written by moda train"},
        {"out", ARG_STRING, &o.out, "REGISTRY", "registry directory (created if needed)"},
        {"name", ARG_STRING, &o.name, "NAME", "model name (default: the checkpoint directory's name)"},
        {"tau", ARG_FLOAT, &o.tau, "T", "activation-rate threshold for the module stats (0.9)"},
        {"batch-size", ARG_INT, &o.batch, "N", "batch size of the passes (256)"},
        {"data-dir", ARG_STRING, &o.data.data_dir, "DIR", "dataset directory (default: the recorded one)"},
        {"dataset", ARG_STRING, &o.data.kind, "D", "the dataset's kind; must be the one trained on (default: it)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    bool ok = args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help);
    const char *why = !ok || help                  ? NULL
                      : !o.ckpt                    ? "--checkpoint is required"
                      : !o.out                     ? "--out is required"
                      : !(o.tau >= 0 && o.tau <= 1) ? "--tau must lie in [0, 1]"
                      : o.batch < 1                ? "--batch-size must be positive"
                      : o.name && !registry_name_valid(o.name)
                          ? "--name must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with '.'"
                          : NULL;
    if (!ok || help || why) {
        FILE *f = help ? stdout : stderr;
        if (why) fprintf(stderr, "moda decompose: %s\n", why);
        fprintf(f, "usage: moda decompose --checkpoint FILE --out REGISTRY [options]\n\n"
                   "Runs the model in eval mode over its training split (as trained: same subset,\n"
                   "no augmentation) to get each unit's per-class activation rate, evaluates it on\n"
                   "the test split, computes module sizes and overlaps at --tau, and writes the\n"
                   "model, its rates and a manifest into the registry (replacing a model of the\n"
                   "same name).\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    char name[256];
    if (o.name) {
        snprintf(name, sizeof name, "%s", o.name);
    } else {
        default_model_name(o.ckpt, name, sizeof name);
        if (!registry_name_valid(name)) {
            fprintf(stderr, "moda decompose: the checkpoint directory's name \"%s\" is not a valid model name; "
                            "use --name\n", name);
            return EXIT_USAGE;
        }
    }
    char err[ERR_LEN] = "";
    /* A damaged registry fails now, not after the long pass. */
    registry *reg = NULL;
    const registry_remote_options remote = cli_env_registry_options();
    moda_status s = registry_open(o.out, &remote, &reg, err, sizeof err);
    registry_close(reg);
    if (s == MODA_ERR_NOT_FOUND) s = MODA_OK; /* a new registry */
    if (s == MODA_OK) {
        err[0] = '\0';
        s = run_decompose(&o, name, err, sizeof err);
    }
    if (s != MODA_OK) {
        fprintf(stderr, "moda decompose: %s\n", err[0] ? err : moda_status_string(s));
        return s == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    return 0;
}

/* ---- moda inspect -------------------------------------------------------- */

/* The model's manifest, and with a tau its stats recomputed from the
 * stored rates (that needs the whole model). */
static moda_status inspect_load(const registry *reg, const char *name, float tau, const compose_mode *mode,
                                moda_backend **be, registry_model *m, char *err, size_t errlen) {
    if (isnan(tau)) return registry_read_manifest(reg, name, m, err, errlen);
    if (!*be && !(*be = backend_cpu_new())) {
        snprintf(err, errlen, "cannot create the CPU backend");
        return MODA_ERR_BACKEND;
    }
    MODA_TRY(registry_load_model(reg, name, *be, m, err, errlen));
    if (m->patched) return MODA_OK; /* no rates: it has no modules of its own */
    module_stats st;
    /* A model composed per layer is measured per layer unless told. */
    compose_mode how = mode ? *mode : m->composed ? m->origin.mode : COMPOSE_TIED;
    moda_status s = module_stats_compute_mode(m->g, &m->r, tau, how, &st);
    if (s != MODA_OK) {
        snprintf(err, errlen, "%s: module stats: %s", name, moda_status_string(s));
        registry_model_free(m);
        return s;
    }
    module_stats_free(&m->stats);
    m->stats = st;
    return MODA_OK;
}

static int inspect_list(const registry *reg, float tau, const compose_mode *mode) {
    moda_backend *be = NULL;
    int failed = 0;
    printf("%-24s %-10s %6s %7s %9s %5s %12s %9s\n", "model", "arch", "width", "classes", "test acc", "tau",
           "module size", "overlap");
    for (int i = 0; i < registry_count(reg); i++) {
        registry_model m;
        char err[ERR_LEN] = "";
        const char *name = registry_name(reg, i);
        if (inspect_load(reg, name, tau, mode, &be, &m, err, sizeof err) != MODA_OK) {
            fprintf(stderr, "moda inspect: %s\n", err);
            failed = 1;
            continue;
        }
        if (m.patched)
            printf("%-24s %-10s %6s %7d %8.2f%% %5.2f  patched: %s + %s's module\n", m.name, "patched", "",
                   m.info.model.num_classes, 100 * m.test_acc, m.patch.tau, m.patch.weak.model, m.patch.strong.model);
        else
            printf("%-24s %-10s %6g %7d %8.2f%% %5.2f %11.2f%% %8.2f%%\n", m.name, model_arch_name(m.info.model.arch),
                   m.info.model.width, m.info.model.num_classes, 100 * m.test_acc, m.stats.tau,
                   100 * m.stats.mean_size, 100 * m.stats.mean_overlap);
        registry_model_free(&m);
    }
    if (registry_count(reg) == 0) printf("(no models)\n");
    backend_free(be);
    return failed;
}

/* Numbers from the manifest that only the listing shows. */
static void print_model_header(const registry_model *m) {
    json_t *root = json_loads(m->manifest_json, 0, NULL);
    json_t *arch = json_object_get(root, "architecture"), *t = json_object_get(root, "training");
    const model_info *mi = &m->info;
    printf("model %s: %s width %g, %d classes, input %dx%dx%d (pad %d), %lld parameters\n", m->name,
           model_arch_name(mi->model.arch), mi->model.width, mi->model.num_classes, mi->channels,
           mi->model.input_size, mi->model.input_size, mi->pad,
           (long long)json_integer_value(json_object_get(arch, "params")));
    printf("dataset %s; training: alpha %g, beta %g, gamma %g, %lld epoch(s); test accuracy %.2f%%\n",
           mi->dataset[0] ? mi->dataset : "?", json_number_value(json_object_get(t, "alpha")),
           json_number_value(json_object_get(t, "beta")), json_number_value(json_object_get(t, "gamma")),
           (long long)json_integer_value(json_object_get(t, "epochs_done")), 100 * m->test_acc);
    json_decref(root);
}

/* A patched model: its parents, the class, how it was calibrated and
 * what was measured. */
static void print_patched(const registry_model *m) {
    const registry_patch *p = &m->patch;
    const model_info *mi = &m->info;
    printf("model %s: patched, %d classes, input %dx%dx%d (pad %d), dataset %s\n", m->name, mi->model.num_classes,
           mi->channels, mi->model.input_size, mi->model.input_size, mi->pad, mi->dataset[0] ? mi->dataset : "?");
    printf("weak parent   %s (manifest sha256 %.12s)\n", p->weak.model, p->weak.manifest_sha256);
    printf("strong parent %s (manifest sha256 %.12s)\n", p->strong.model, p->strong.manifest_sha256);
    printf("class \"%s\": index %d of the weak model, %d of the strong one; module at tau %.2f (%.2f%% of the "
           "strong model's parameters)\n",
           p->class_name, p->weak_class, p->strong_class, p->tau, 100 * p->module_params);
    printf("calibration: %dx%d, %d epoch(s) of %s, lr %g, batch %d, seed %llu, on %d training images%s%.12s\n\n",
           mi->model.num_classes, mi->model.num_classes, p->epochs, p->optimizer, p->lr, p->batch_size, p->seed,
           p->train_samples, p->train_sha256[0] ? " (sha256 " : "", p->train_sha256);
    const char *rows[PATCH_ACC_ROWS] = {"weak model", "patched", "weak model, calibrated", "patched, calibrated",
                                        "baseline (softmax, min-max module)"};
    printf("%-36s %10s %12s\n", "test set", "accuracy", "on the class");
    for (int i = 0; i < PATCH_ACC_ROWS; i++)
        printf("%-36s %9.2f%% %11.2f%%%s\n", rows[i], p->acc[i][0], p->acc[i][1],
               i == PATCH_ACC_PATCHED_CALIBRATED ? "   <- served" : "");
}

static void print_model(const registry_model *m) {
    if (m->patched) {
        print_patched(m);
        return;
    }
    const module_stats *st = &m->stats;
    int k = st->num_classes;
    print_model_header(m);
    printf("\nmodules at tau %.2f: mean size %.2f%%, mean overlap %.2f%% (of the model's parameters)\n\n", st->tau,
           100 * st->mean_size, 100 * st->mean_overlap);
    printf("%-4s %-24s %12s %14s\n", "idx", "class", "module size", "mean overlap");
    for (int a = 0; a < k; a++) {
        double ov = 0;
        for (int b = 0; b < k; b++)
            if (b != a) ov += st->overlap[(size_t)a * k + b];
        printf("%-4d %-24s %11.2f%% %13.2f%%\n", a, m->info.class_names[a], 100 * st->size[a],
               k > 1 ? 100 * ov / (k - 1) : 0.0);
    }
    if (k <= 20) {
        printf("\noverlap %% (row, column: class index; diagonal: module size)\n%4s", "");
        for (int b = 0; b < k; b++) printf(" %6d", b);
        printf("\n");
        for (int a = 0; a < k; a++) {
            printf("%4d", a);
            for (int b = 0; b < k; b++) printf(" %6.2f", 100 * st->overlap[(size_t)a * k + b]);
            printf("\n");
        }
    } else {
        printf("\n(overlap matrix not shown for more than 20 classes; it is in the manifest)\n");
    }
    if (st->n_layers > 0 && m->manifest_json) {
        /* Layer names come from the manifest's stats entries. */
        json_t *root = json_loads(m->manifest_json, 0, NULL);
        json_t *graph = json_object_get(json_object_get(root, "architecture"), "graph");
        printf("\n%-5s %-28s %16s\n", "node", "layer", "pair overlap");
        for (int l = 0; l < st->n_layers; l++) {
            const char *name =
                json_string_value(json_object_get(json_array_get(graph, (size_t)st->layer_node[l]), "name"));
            printf("%-5d %-28s %15.2f%%\n", st->layer_node[l], name ? name : "?", 100 * st->layer_overlap[l]);
        }
        json_decref(root);
    }
}

int cmd_inspect(int argc, char **argv) {
    float tau = NAN;
    bool help = false;
    const char *pos[2] = {NULL, NULL}, *mode_name = NULL;
    compose_mode mode = COMPOSE_TIED;
    int npos = 0;
    const arg_spec specs[] = {
        {"tau", ARG_FLOAT, &tau, "T", "recompute module stats at this threshold from the stored rates"},
        {"mode", ARG_STRING, &mode_name, "M",
         "recompute module stats (at --tau, else 0.9) for this composition mode: tied | per-layer"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    bool ok = args_parse(argc, argv, 2, specs, n, pos, 2, &npos, &help);
    const char *why = !ok || help                          ? NULL
                      : npos < 1                           ? "REGISTRY is required"
                      : !isnan(tau) && !(tau >= 0 && tau <= 1) ? "--tau must lie in [0, 1]"
                      : mode_name && !compose_mode_parse(mode_name, &mode) ? "--mode must be tied or per-layer"
                                                           : NULL;
    if (mode_name && isnan(tau)) tau = DECOMPOSE_DEFAULT_TAU;
    if (!ok || help || why) {
        FILE *f = help ? stdout : stderr;
        if (why) fprintf(stderr, "moda inspect: %s\n", why);
        fprintf(f, "usage: moda inspect REGISTRY [MODEL] [options]\n\n"
                   "Without MODEL, lists the registry's models with architecture, test accuracy,\n"
                   "mean module size and mean overlap. With MODEL, shows each class's module\n"
                   "size, the class-by-class overlap matrix and per-layer overlap. Sizes and\n"
                   "overlaps are percentages of the model's trainable parameters. REGISTRY is a\n"
                   "directory or an http(s) URL (read through a local mirror).\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    char err[ERR_LEN] = "";
    registry *reg = NULL;
    const registry_remote_options remote = cli_env_registry_options();
    if (registry_open(pos[0], &remote, &reg, err, sizeof err) != MODA_OK) {
        fprintf(stderr, "moda inspect: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (npos < 2) {
        rc = inspect_list(reg, tau, mode_name ? &mode : NULL);
    } else {
        moda_backend *be = NULL;
        registry_model m;
        if (inspect_load(reg, pos[1], tau, mode_name ? &mode : NULL, &be, &m, err, sizeof err) != MODA_OK) {
            fprintf(stderr, "moda inspect: %s\n", err);
            rc = 1;
        } else {
            print_model(&m);
            registry_model_free(&m);
        }
        backend_free(be);
    }
    registry_close(reg);
    return rc;
}
