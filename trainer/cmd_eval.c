#include "cmd_eval.h"

#include <stdio.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "model_data.h"
#include "train.h"

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL;
    model_data_options data = {.log = stderr};
    int batch = 256;
    bool help = false;
    const arg_spec specs[] = {
        {"checkpoint", ARG_STRING, &ckpt, "FILE", "checkpoint.safetensors written by moda train"},
        {"data-dir", ARG_STRING, &data.data_dir, "DIR", "dataset directory (default: the recorded one)"},
        {"dataset", ARG_STRING, &data.kind, "D", "the dataset's kind; must be the one trained on (default: it)"},
        {"batch-size", ARG_INT, &batch, "N", "evaluation batch size (256)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    if (!args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help) || help || !ckpt || batch < 1) {
        FILE *f = help ? stdout : stderr;
        if (!help && !ckpt) fprintf(stderr, "moda eval: --checkpoint is required\n");
        fprintf(f, "usage: moda eval --checkpoint FILE [options]\n\n"
                   "Evaluates on the test split of the data the model was trained on, checked\n"
                   "against the checkpoint's record of it.\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    char err[1024] = "";
    moda_backend *be = backend_cpu_new();
    checkpoint ck;
    dataset test = {0};
    eval_result r = {0};
    moda_status s = be ? checkpoint_open(ckpt, be, &ck, err, sizeof err) : MODA_ERR_BACKEND;
    if (s == MODA_OK) {
        s = model_data_load(&test, &data, ckpt, &ck.info, DATASET_TEST, 0, err, sizeof err);
        if (s == MODA_OK) s = graph_plan(ck.g, batch);
        if (s == MODA_OK) s = evaluate(ck.g, &test, batch, &r);
        if (s == MODA_OK) {
            printf("%s: %s (width %g) on %s, %d test images\n", ckpt, model_arch_name(ck.info.model.arch),
                   ck.info.model.width, ck.info.dataset, test.n);
            printf("test accuracy %.2f%%  loss %.4f\n\n%-4s %-20s %8s %8s\n", 100 * r.acc, r.loss, "idx", "class",
                   "samples", "accuracy");
            for (int k = 0; k < test.num_classes; k++)
                printf("%-4d %-20s %8d %7.2f%%\n", k, ck.info.class_names[k], r.total[k],
                       r.total[k] ? 100.0 * r.correct[k] / r.total[k] : 0.0);
        }
        eval_result_free(&r);
        dataset_free(&test);
        checkpoint_close(&ck);
    }
    backend_free(be);
    if (s != MODA_OK) {
        fprintf(stderr, "moda eval: %s\n", err[0] ? err : moda_status_string(s));
        return s == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    return 0;
}
