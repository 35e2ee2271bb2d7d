#include "cmd_compose.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "cli.h"
#include "cli_env.h"
#include "compose.h"
#include "model_data.h"
#include "progress.h"
#include "registry.h"
#include "train.h"

/* ---- the class list ------------------------------------------------------ */

/* Resolve a comma-separated LIST into out (room for k); false with a
 * reason on an empty list or item, an unknown class or a repeat. */
static bool parse_class_list(const char *list, char *const *names, int k, int *out, int *n, char *why, size_t len) {
    *n = 0;
    char *copy = strdup(list);
    if (!copy) {
        snprintf(why, len, "out of memory");
        return false;
    }
    bool ok = true;
    char *item = copy;
    for (bool last = false; ok && !last;) {
        char *comma = strchr(item, ',');
        last = comma == NULL;
        if (comma) *comma = '\0';
        /* Blanks around a name are the list's, not the name's. */
        while (isspace((unsigned char)*item)) item++;
        size_t l = strlen(item);
        while (l > 0 && isspace((unsigned char)item[l - 1])) item[--l] = '\0';
        if (!item[0]) {
            if (last && *n == 0) snprintf(why, len, "--classes is empty");
            else snprintf(why, len, "--classes \"%s\" has an empty entry", list);
            ok = false;
            break;
        }
        int c = class_resolve(item, names, k, why, len);
        ok = c >= 0;
        for (int j = 0; ok && j < *n; j++)
            if (out[j] == c) {
                snprintf(why, len, "class \"%s\" (index %d) is given more than once", names[c], c);
                ok = false;
            }
        if (ok) out[(*n)++] = c;
        if (comma) item = comma + 1;
    }
    free(copy);
    return ok;
}

/* ---- evaluation and storing ---------------------------------------------- */

/* Accuracy of the composed model c on the test images of its classes
 * (parent indices cls[0..nt)), labels remapped to positions in cls. */
static moda_status reuse_accuracy(graph *c, const dataset *test, const int *cls, int nt, int batch, double *acc,
                                  int *count, char *err, size_t errlen) {
    size_t per = (size_t)test->c * test->h * test->w;
    float *x = malloc((size_t)batch * per * sizeof(float));
    float *logits = malloc((size_t)batch * nt * sizeof(float));
    int *pos = malloc((size_t)batch * sizeof(int));
    moda_status s = x && logits && pos ? graph_plan(c, batch) : MODA_ERR_NOMEM;
    long right = 0, total = 0;
    for (int i = 0; s == MODA_OK && i < test->n;) {
        int b = 0;
        for (; i < test->n && b < batch; i++)
            for (int j = 0; j < nt; j++)
                if (test->labels[i] == cls[j]) {
                    memcpy(x + (size_t)b * per, test->images + (size_t)i * per, per * sizeof(float));
                    pos[b++] = j;
                }
        if (!b) break;
        s = graph_forward(c, x, b, false);
        if (s == MODA_OK)
            s = backend_copy_to_host(c->be, logits, graph_output(c)->out.data, (size_t)b * nt * sizeof(float));
        for (int r = 0; s == MODA_OK && r < b; r++) {
            const float *row = logits + (size_t)r * nt;
            int best = 0;
            for (int j = 1; j < nt; j++)
                if (row[j] > row[best]) best = j;
            right += best == pos[r];
        }
        total += b;
    }
    free(x);
    free(logits);
    free(pos);
    if (s != MODA_OK) {
        snprintf(err, errlen, "evaluating the composed model: %s", moda_status_string(s));
        return s;
    }
    if (!total) {
        snprintf(err, errlen, "%s: no test images of the chosen classes", test->source);
        return MODA_ERR_ARG;
    }
    *acc = (double)right / (double)total;
    *count = (int)total;
    return MODA_OK;
}

/* The parent's training config: the composed model's weights are its. */
static char *parent_training(const registry_model *m) {
    json_t *root = json_loads(m->manifest_json, 0, NULL);
    json_t *t = json_object_get(root, "training");
    char *text = json_is_object(t) ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

typedef struct compose_options {
    const char *reg, *model, *classes, *save, *out, *mode_name;
    model_data_options data;
    float tau;
    compose_mode mode;
    int batch;
    registry_remote_options remote;
} compose_options;

static moda_status save_composed(const compose_options *o, const registry_model *parent, graph *c,
                                 const compose_plan *p, char *err, size_t errlen) {
    const char *dest = o->out ? o->out : o->reg;
    rates r = {0};
    module_stats st = {0};
    dataset test = {0};
    model_info mi = {0};
    registry_origin origin = {0};
    double acc = 0;
    int images = 0;
    char *training = NULL;
    moda_status s = compose_rates(parent->g, &parent->r, p, c, &r);
    if (s != MODA_OK) snprintf(err, errlen, "slicing the rates: %s", moda_status_string(s));
    if (s == MODA_OK && (s = module_stats_compute_mode(c, &r, o->tau, o->mode, &st)) != MODA_OK)
        snprintf(err, errlen, "module stats of the composed model: %s", moda_status_string(s));
    const model_info *pi = &parent->info;
    if (s == MODA_OK) {
        s = model_data_load(&test, &o->data, parent->name, pi, DATASET_TEST, 0, err, errlen);
    }
    if (s == MODA_OK) s = reuse_accuracy(c, &test, p->classes, p->n_classes, o->batch, &acc, &images, err, errlen);
    if (s == MODA_OK && (s = registry_composed_info(parent, p->classes, p->n_classes, o->tau, &mi, &origin)) != MODA_OK)
        snprintf(err, errlen, "describing the composed model: %s", moda_status_string(s));
    origin.mode = o->mode;
    if (s == MODA_OK && !(training = parent_training(parent))) {
        snprintf(err, errlen, "%s: cannot read its training config", parent->name);
        s = MODA_ERR_NOMEM;
    }
    if (s == MODA_OK) s = registry_write_composed(dest, o->save, c, &mi, &origin, training, acc, &r, &st, err, errlen);
    if (s == MODA_OK) {
        printf("wrote model \"%s\" to %s\n", o->save, dest);
        printf("  test accuracy %.2f%% on the %d test images of its classes\n", 100 * acc, images);
        printf("  at tau %.2f: mean module size %.2f%%, mean overlap %.2f%% of its %zu parameters\n", o->tau,
               100 * st.mean_size, 100 * st.mean_overlap, graph_param_count(c));
    }
    free(training);
    registry_origin_free(&origin);
    model_info_free(&mi);
    dataset_free(&test);
    module_stats_free(&st);
    rates_free(&r);
    return s;
}

static void print_summary(const registry_model *m, const graph *c, const compose_plan *p, float tau, double ms) {
    double full_params = (double)graph_param_count(m->g), full_macs = graph_macs(m->g);
    printf("composed %s for %d of its %d classes at tau %.2f (%s); outputs in order:\n", m->name, p->n_classes,
           m->info.model.num_classes, tau, compose_mode_name(p->mode));
    for (int j = 0; j < p->n_classes; j++)
        printf("  %-3d %s (class %d)\n", j, m->info.class_names[p->classes[j]], p->classes[j]);
    printf("parameters %zu of %.0f (%.2f%%)\n", graph_param_count(c), full_params,
           full_params > 0 ? 100 * (double)graph_param_count(c) / full_params : 0.0);
    printf("MACs       %.0f of %.0f (%.2f%%)\n", graph_macs(c), full_macs,
           full_macs > 0 ? 100 * graph_macs(c) / full_macs : 0.0);
    printf("compose    %.3f ms (plan and build)\n", ms);
}

/* Exit code; messages on stderr. */
static int run_compose(const compose_options *o) {
    char err[ERR_LEN] = "", why[ERR_LEN] = "";
    moda_backend *be = backend_cpu_new();
    registry *reg = NULL;
    registry_model m = {0};
    compose_plan p = {0};
    graph *c = NULL;
    int *cls = NULL, n = 0, rc = 1;
    moda_status s = be ? registry_open(o->reg, &o->remote, &reg, err, sizeof err) : MODA_ERR_BACKEND;
    if (s == MODA_OK) s = registry_load_model(reg, o->model, be, &m, err, sizeof err);
    if (s == MODA_OK && !(cls = malloc((size_t)m.info.model.num_classes * sizeof(int)))) s = MODA_ERR_NOMEM;
    if (s == MODA_OK && !parse_class_list(o->classes, m.info.class_names, m.info.model.num_classes, cls, &n, why,
                                          sizeof why)) {
        fprintf(stderr, "moda compose: %s\n", why);
        rc = EXIT_USAGE;
        s = MODA_ERR_ARG;
    } else if (s == MODA_OK) {
        double t0 = progress_now();
        s = compose_plan_make_mode(m.g, &m.r, cls, n, o->tau, o->mode, &p);
        if (s == MODA_OK) s = compose_build(m.g, &p, be, &c);
        double ms = 1e3 * (progress_now() - t0);
        if (s == MODA_ERR_UNSUPPORTED && m.composed && m.origin.mode == COMPOSE_PER_LAYER)
            snprintf(err, sizeof err, "composing %s: it was composed per layer, and composes again only per layer "
                     "(--mode per-layer)", m.name);
        else if (s != MODA_OK)
            snprintf(err, sizeof err, "composing %s: %s", m.name, moda_status_string(s));
        if (s == MODA_OK) print_summary(&m, c, &p, o->tau, ms);
        if (s == MODA_OK && o->save) s = save_composed(o, &m, c, &p, err, sizeof err);
        if (s == MODA_OK) rc = 0;
    }
    if (s != MODA_OK && rc == 1) fprintf(stderr, "moda compose: %s\n", err[0] ? err : moda_status_string(s));
    graph_free(c);
    compose_plan_free(&p);
    free(cls);
    registry_model_free(&m);
    registry_close(reg);
    backend_free(be);
    return rc;
}

int cmd_compose(int argc, char **argv) {
    compose_options o = {.tau = DECOMPOSE_DEFAULT_TAU, .batch = 256, .data = {.log = stderr}};
    bool help = false;
    const arg_spec specs[] = {
        {"registry", ARG_STRING, &o.reg, "DIR|URL", "module registry: a directory, or http(s) to read"},
        {"model", ARG_STRING, &o.model, "NAME", "the model to compose from"},
        {"classes", ARG_STRING, &o.classes, "LIST", "comma-separated class names or indices, in output order"},
        {"tau", ARG_FLOAT, &o.tau, "T", "activation-rate threshold (0.9)"},
        {"mode", ARG_STRING, &o.mode_name, "M",
         "tied (channels tied across residual adds and depthwise layers) | per-layer (each layer keeps its own "
         "units; smaller residual and depthwise models) (tied)"},
        {"save", ARG_STRING, &o.save, "NAME", "store the composed model under this name"},
        {"out", ARG_STRING, &o.out, "DIR", "registry to store it in (default: --registry)"},
        {"data-dir", ARG_STRING, &o.data.data_dir, "DIR", "test data for --save's accuracy (default: the recorded)"},
        {"dataset", ARG_STRING, &o.data.kind, "D", "the dataset's kind; must be the one trained on (default: it)"},
        {"batch-size", ARG_INT, &o.batch, "N", "evaluation batch size (256)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    bool ok = args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help);
    const char *why = !ok || help                   ? NULL
                      : !o.reg                      ? "--registry is required"
                      : !o.model                    ? "--model is required"
                      : !o.classes                  ? "--classes is required"
                      : !(o.tau >= 0 && o.tau <= 1) ? "--tau must lie in [0, 1]"
                      : o.mode_name && !compose_mode_parse(o.mode_name, &o.mode) ? "--mode must be tied or per-layer"
                      : o.batch < 1                 ? "--batch-size must be positive"
                      : o.out && !o.save            ? "--out needs --save"
                      : o.save && !registry_name_valid(o.save)
                          ? "--save must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with '.'"
                      : o.save && !strcmp(o.save, o.model) && (!o.out || !strcmp(o.out, o.reg))
                          ? "--save would replace the model composed from; choose another name or --out"
                          : NULL;
    if (!ok || help || why) {
        FILE *f = help ? stdout : stderr;
        if (why) fprintf(stderr, "moda compose: %s\n", why);
        fprintf(f, "usage: moda compose --registry DIR --model NAME --classes LIST [options]\n\n"
                   "Composes the model's modules for the classes in LIST (names, matched ignoring\n"
                   "case when unambiguous, or indices) into a standalone model whose outputs are\n"
                   "those classes in the order given, and prints its parameters and MACs against\n"
                   "the full model's and the compose time. With --save it is stored as a registry\n"
                   "model of its own: weights, the rates of its kept units, module stats at --tau\n"
                   "and its accuracy on the test images of its classes.\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    o.remote = cli_env_registry_options();
    return run_compose(&o);
}
