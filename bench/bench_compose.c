/* Composition latency: plan + slice (compose_plan_make + compose_build) of
 * VGG16 at width 1 for 2- and 5-class tasks, parent model in memory; then
 * eval-mode inference time of composed models at batch 64 against the
 * full model's, next to their FLOPs ratio.
 *
 * By default the model has random weights and synthetic rates (uniform in
 * [0, 1], seeded), so at tau 0.9 each class keeps about 10% of every layer;
 * the classes' union grows with the task. With --registry and --model, a
 * trained model and its measured rates are used instead.
 * Reported: median over reps of the plan, the build (new graph, slab
 * allocation, weight slicing) and their sum, in ms; for inference, the
 * models take turns for max(reps, 5) rounds, and each one's time ratio is
 * the median of its per-round ratios to the full model.
 *
 * --mode picks the composition mode (tied, per-layer); --frozen runs the
 * inference through frozen plans (engine/frozen.h), as the server does,
 * instead of the graph.
 *
 * Usage: bench_compose [--reps N] [--arch A] [--width W] [--tau T]
 *                      [--mode tied|per-layer] [--frozen 0|1]
 *                      [--registry DIR --model NAME] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_env.h"
#include "compose.h"
#include "frozen.h"
#include "models.h"
#include "registry.h"
#include "rng.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    int reps = 20;
    const char *arch = "vgg16";
    float width = 1.0f, tau = 0.9f;
    const char *reg_path = NULL, *model = NULL;
    compose_mode mode = COMPOSE_TIED;
    bool use_frozen = false;
    static const char usage[] = "usage: bench_compose [--reps N] [--arch A] [--width W] [--tau T] "
                                "[--mode tied|per-layer] [--frozen 0|1] [--registry DIR --model NAME]\n";
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "bench_compose: %s needs a value\n%s", argv[i], usage);
            return 2;
        }
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--arch")) arch = argv[i + 1];
        else if (!strcmp(argv[i], "--width")) width = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--tau")) tau = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--registry")) reg_path = argv[i + 1];
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--frozen")) use_frozen = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "--mode")) {
            if (!compose_mode_parse(argv[i + 1], &mode)) {
                fprintf(stderr, "bench_compose: --mode takes tied or per-layer\n%s", usage);
                return 2;
            }
        }
        else {
            fprintf(stderr, "bench_compose: unknown option %s\n%s", argv[i], usage);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    moda_backend *be = backend_cpu_new();
    model_config cfg;
    moda_status s = MODA_OK;
    graph *g = NULL;
    rates r;
    registry_model rm = {0};
    rng q;
    rng_seed(&q, 7, 1);
    if (reg_path || model) {
        char err[1024] = "";
        registry *reg = NULL;
        const registry_remote_options remote = cli_env_registry_options();
        s = (reg_path && model) ? registry_open(reg_path, &remote, &reg, err, sizeof err) : MODA_ERR_ARG;
        if (s == MODA_OK) s = registry_load_model(reg, model, be, &rm, err, sizeof err);
        registry_close(reg);
        if (s != MODA_OK) {
            fprintf(stderr, "bench_compose: %s\n", err[0] ? err : "--registry and --model go together");
            return 1;
        }
        cfg = rm.info.model;
        if (cfg.num_classes < 10) {
            fprintf(stderr, "bench_compose: the tasks need a model of at least 10 classes\n");
            return 1;
        }
        g = rm.g;
        r = rm.r;
        printf("%s (%s width %g), %zu parameters; tau %g, measured rates; median of %d reps\n\n", model,
               model_arch_name(cfg.arch), cfg.width, graph_param_count(g), tau, reps);
    } else {
        if (!be || model_arch_from_name(arch, &cfg.arch) != MODA_OK) {
            fprintf(stderr, "bench_compose: unknown architecture or no backend\n");
            return 1;
        }
        cfg = model_config_default(cfg.arch);
        cfg.width = width;
        g = model_build(be, &cfg, &s);
        if (!g || model_init(g, &cfg, 1) != MODA_OK) {
            fprintf(stderr, "bench_compose: cannot build %s: %s\n", arch, moda_status_string(s));
            return 1;
        }
        rates_alloc(&r, g, cfg.num_classes);
        for (int l = 0; l < r.n_layers; l++)
            rng_fill_uniform(&q, r.rate[l], (size_t)r.num_classes * r.units[l], 0, 1);
        printf("%s width %g, %zu parameters; tau %g, synthetic rates; median of %d reps\n\n", arch, width,
               graph_param_count(g), tau, reps);
    }
    printf("%-8s %10s %10s %10s %10s\n", "classes", "params", "plan ms", "build ms", "total ms");
    int tasks[2][5] = {{3, 8}, {0, 2, 4, 6, 9}}, sizes[2] = {2, 5};
    double *plan_t = malloc((size_t)reps * sizeof(double)), *build_t = malloc((size_t)reps * sizeof(double)),
           *total_t = malloc((size_t)reps * sizeof(double));
    for (int t = 0; t < 2; t++) {
        size_t params = 0;
        for (int i = 0; i < reps; i++) {
            compose_plan p;
            graph *c = NULL;
            double t0 = now_ms();
            s = compose_plan_make_mode(g, &r, tasks[t], sizes[t], tau, mode, &p);
            double t1 = now_ms();
            if (s == MODA_OK) s = compose_build(g, &p, be, &c);
            double t2 = now_ms();
            if (s != MODA_OK) {
                fprintf(stderr, "bench_compose: %s\n", moda_status_string(s));
                return 1;
            }
            plan_t[i] = t1 - t0;
            build_t[i] = t2 - t1;
            total_t[i] = t2 - t0;
            params = graph_param_count(c);
            graph_free(c);
            compose_plan_free(&p);
        }
        printf("%-8d %9.2f%% %10.2f %10.2f %10.2f\n", sizes[t], 100.0 * params / graph_param_count(g),
               median(plan_t, reps), median(build_t, reps), median(total_t, reps));
    }

    /* Inference at batch 64. The models take turns, one forward pass each
     * per round, so that a slow spell of a shared machine lands on all of
     * them; a model's time ratio is the median of its per-round ratios to
     * the full model's. */
    enum { N_INFER = 7 };
    const int batch = 64, rounds = reps < 5 ? 5 : reps;
    float *x = malloc((size_t)batch * cfg.in_channels * cfg.input_size * cfg.input_size * sizeof(float));
    rng_fill_normal(&q, x, (uint64_t)batch * cfg.in_channels * cfg.input_size * cfg.input_size, 0, 1);
    /* Two- and five-class tasks that differ in which classes they pair. */
    const int infer_tasks[N_INFER - 1][10] = {{3, 8}, {0, 6}, {5, 9}, {0, 2, 4, 6, 9}, {1, 3, 5, 7, 8},
                                              {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}};
    const int infer_sizes[N_INFER - 1] = {2, 2, 2, 5, 5, 10};
    graph *models[N_INFER] = {g};
    double *ms = malloc((size_t)N_INFER * rounds * sizeof(double));
    double *ratio = malloc((size_t)N_INFER * rounds * sizeof(double));
    if (!x || !ms || !ratio) s = MODA_ERR_NOMEM;
    for (int t = 1; s == MODA_OK && t < N_INFER; t++) {
        compose_plan p;
        s = compose_plan_make_mode(g, &r, infer_tasks[t - 1], infer_sizes[t - 1], tau, mode, &p);
        if (s == MODA_OK) s = compose_build(g, &p, be, &models[t]);
        compose_plan_free(&p);
    }
    frozen *fz[N_INFER] = {NULL};
    float *logits = malloc((size_t)batch * cfg.num_classes * sizeof(float));
    if (!logits) s = MODA_ERR_NOMEM;
    for (int t = 0; s == MODA_OK && t < N_INFER; t++) {
        if (use_frozen && (s = frozen_new(models[t], be, batch, &fz[t])) == MODA_OK)
            s = frozen_run(fz[t], x, batch, logits); /* builds batch 64's primitives */
        if (s == MODA_OK && !use_frozen && (s = graph_plan_inference(models[t], batch)) == MODA_OK)
            s = graph_forward(models[t], x, batch, false); /* warms the caches */
    }
    for (int i = 0; s == MODA_OK && i < rounds; i++)
        for (int t = 0; s == MODA_OK && t < N_INFER; t++) {
            double t0 = now_ms();
            s = use_frozen ? frozen_run(fz[t], x, batch, logits) : graph_forward(models[t], x, batch, false);
            ms[t * rounds + i] = now_ms() - t0;
        }
    for (int t = 0; t < N_INFER; t++) frozen_free(fz[t]);
    free(logits);
    if (s != MODA_OK) {
        fprintf(stderr, "bench_compose: %s\n", moda_status_string(s));
        return 1;
    }
    printf("\ninference (%s, %s composition), batch 64, %d rounds, the models in turn; medians:\n"
           "%-20s %10s %10s %10s %10s\n",
           use_frozen ? "frozen plans" : "graph", compose_mode_name(mode), rounds, "classes", "params", "FLOPs", "ms",
           "time");
    for (int i = 0; i < N_INFER * rounds; i++) ratio[i] = ms[i] / ms[i % rounds]; /* before median() sorts */
    for (int t = 0; t < N_INFER; t++) {
        char label[32] = "full";
        for (int j = 0, len = 0; t > 0 && j < infer_sizes[t - 1]; j++)
            len += snprintf(label + len, sizeof label - (size_t)len, j ? ",%d" : "%d", infer_tasks[t - 1][j]);
        printf("%-20s %9.2f%% %9.2f%% %10.2f %9.2f%%\n", label,
               100.0 * (double)graph_param_count(models[t]) / (double)graph_param_count(g),
               100.0 * graph_macs(models[t]) / graph_macs(g),
               median(ms + (size_t)t * rounds, rounds), 100.0 * median(ratio + (size_t)t * rounds, rounds));
    }
    for (int t = 1; t < N_INFER; t++) graph_free(models[t]);
    free(ms);
    free(ratio);
    free(x);
    free(plan_t);
    free(build_t);
    free(total_t);
    if (rm.g) {
        registry_model_free(&rm);
    } else {
        rates_free(&r);
        graph_free(g);
    }
    backend_free(be);
    return 0;
}
