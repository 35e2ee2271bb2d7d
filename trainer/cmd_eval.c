#include "cmd_eval.h"

#include <stdio.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "cli_env.h"
#include "model_data.h"
#include "registry.h"
#include "train.h"

/* The model to evaluate, from a checkpoint or a registry. */
typedef struct eval_model {
    checkpoint ck;
    registry *reg;
    registry_model rm;
    bool from_registry;
    graph *g;              /* ck.g or rm.g */
    const model_info *info;
    char name[1100];
} eval_model;

static moda_status eval_open(eval_model *m, const char *ckpt, const char *reg, const char *model, moda_backend *be,
                             char *err, size_t errlen) {
    memset(m, 0, sizeof(*m));
    if (ckpt) {
        MODA_TRY(checkpoint_open(ckpt, be, &m->ck, err, errlen));
        m->g = m->ck.g;
        m->info = &m->ck.info;
        snprintf(m->name, sizeof m->name, "%s", ckpt);
        return MODA_OK;
    }
    const registry_remote_options remote = cli_env_registry_options();
    MODA_TRY(registry_open(reg, &remote, &m->reg, err, errlen));
    moda_status s = registry_load_model(m->reg, model, be, &m->rm, err, errlen);
    if (s != MODA_OK) {
        registry_close(m->reg);
        m->reg = NULL;
        return s;
    }
    m->from_registry = true;
    m->g = m->rm.g;
    m->info = &m->rm.info;
    snprintf(m->name, sizeof m->name, "%s", model);
    return MODA_OK;
}

static void eval_close(eval_model *m) {
    if (m->from_registry) {
        registry_model_free(&m->rm);
        registry_close(m->reg);
    } else if (m->g) {
        checkpoint_close(&m->ck);
    }
    memset(m, 0, sizeof(*m));
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *reg = NULL, *model = NULL;
    model_data_options data = {.log = stderr};
    int batch = 256;
    bool help = false;
    const arg_spec specs[] = {
        {"checkpoint", ARG_STRING, &ckpt, "FILE", "checkpoint.safetensors written by moda train"},
        {"registry", ARG_STRING, &reg, "DIR|URL", "or a registry model: the registry (with --model)"},
        {"model", ARG_STRING, &model, "NAME", "the registry model (trained, composed or patched)"},
        {"data-dir", ARG_STRING, &data.data_dir, "DIR", "dataset directory (default: the recorded one)"},
        {"dataset", ARG_STRING, &data.kind, "D", "the dataset's kind; must be the one trained on (default: it)"},
        {"batch-size", ARG_INT, &batch, "N", "evaluation batch size (256)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    bool ok = args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help);
    const char *why = !ok || help                               ? NULL
                      : !ckpt == !reg                           ? "give --checkpoint, or --registry with --model"
                      : reg && !model                           ? "--registry needs --model"
                      : ckpt && model                           ? "--model goes with --registry, not --checkpoint"
                      : batch < 1                               ? "--batch-size must be positive"
                                                                : NULL;
    if (!ok || help || why) {
        FILE *f = help ? stdout : stderr;
        if (why) fprintf(stderr, "moda eval: %s\n", why);
        fprintf(f, "usage: moda eval --checkpoint FILE [options]\n"
                   "       moda eval --registry R --model NAME [options]\n\n"
                   "Evaluates on the test split of the data the model was trained on, checked\n"
                   "against the model's record of it (a patched model's is its weak parent's).\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    char err[1024] = "";
    moda_backend *be = backend_cpu_new();
    eval_model m;
    dataset test = {0};
    eval_result r = {0};
    moda_status s = be ? eval_open(&m, ckpt, reg, model, be, err, sizeof err) : MODA_ERR_BACKEND;
    if (s == MODA_OK) {
        const model_info *info = m.info;
        s = model_data_load(&test, &data, m.name, info, DATASET_TEST, 0, err, sizeof err);
        if (s == MODA_OK) s = graph_plan_inference(m.g, batch);
        if (s == MODA_OK) s = evaluate(m.g, &test, batch, &r);
        if (s == MODA_OK) {
            printf("%s: %s (width %g) on %s, %d test images\n", m.name,
                   m.from_registry && m.rm.patched ? "patched" : model_arch_name(info->model.arch), info->model.width,
                   info->dataset, test.n);
            printf("test accuracy %.2f%%  loss %.4f\n\n%-4s %-20s %8s %8s\n", 100 * r.acc, r.loss, "idx", "class",
                   "samples", "accuracy");
            for (int k = 0; k < test.num_classes; k++)
                printf("%-4d %-20s %8d %7.2f%%\n", k, info->class_names[k], r.total[k],
                       r.total[k] ? 100.0 * r.correct[k] / r.total[k] : 0.0);
        }
        eval_result_free(&r);
        dataset_free(&test);
        eval_close(&m);
    }
    backend_free(be);
    if (s != MODA_OK) {
        fprintf(stderr, "moda eval: %s\n", err[0] ? err : moda_status_string(s));
        return s == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    return 0;
}
