/* Training throughput of one architecture, the counterpart of
 * train_torch.py.
 *
 * Each step is train_step(), the step `moda train` runs: train-mode forward,
 * softmax cross-entropy, backward with the MODA hook (its terms measured even
 * in standard training, as the trainer logs them), SGD with momentum 0.9,
 * Nesterov, weight decay 5e-4, lr 0.05. Input: Fashion-MNIST's shape after
 * padding (1 x 32 x 32, 10 classes). With --images/--labels, consecutive
 * batches of those raw files (float32 images, int32 labels, as
 * run_train.sh writes them from the real training set for both sides);
 * without, one seeded batch of N(0, 1) pixels and random labels, which a
 * model soon fits, after which the gradients can sink into denormals and
 * time something other than training. The data pipeline is not part of
 * the number either way.
 * Reported: images/s = batch * steps / seconds over the timed steps, after
 * the warm-up steps (which also let oneDNN create its primitives).
 *
 * Usage: bench_train [--arch A] [--width W] [--batch N] [--steps N]
 *                    [--warmup N] [--images F --labels F] [--moda] [--json]
 *   --moda trains with `moda train --moda`'s weights (alpha 1, beta 1,
 *   gamma 0.3); --json prints one JSON object on one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_env.h"
#include "models.h"
#include "rng.h"
#include "train.h"

#define IN_CHANNELS 1
#define INPUT_SIZE 32
#define NUM_CLASSES 10

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void check(moda_status s, const char *what) {
    if (s != MODA_OK) {
        fprintf(stderr, "%s failed: %s\n", what, moda_status_string(s));
        exit(1);
    }
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Whole file into *out (malloc'd); its size in bytes. Exits on failure. */
static size_t read_file(const char *path, void **out) {
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    long n = ftell(f);
    rewind(f);
    *out = xmalloc(n > 0 ? (size_t)n : 1);
    if (n < 0 || fread(*out, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return (size_t)n;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s [--arch vgg16|resnet18|mobilenet|lenet5] [--width W] [--batch N] [--steps N] "
            "[--warmup N] [--images F --labels F] [--moda] [--device cpu|cuda] [--json]\n",
            prog);
    exit(2);
}

int main(int argc, char **argv) {
    const char *arch_name = "lenet5";
    float width = 1.0f;
    int batch = 128, steps = 20, warmup = 3, json = 0, moda = 0;
    const char *images_path = NULL, *labels_path = NULL, *device = "cpu";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--moda")) {
            moda = 1;
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            device = argv[++i];
        } else if (!strcmp(argv[i], "--arch") && i + 1 < argc) {
            arch_name = argv[++i];
        } else if (!strcmp(argv[i], "--width") && i + 1 < argc) {
            width = strtof(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            warmup = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--images") && i + 1 < argc) {
            images_path = argv[++i];
        } else if (!strcmp(argv[i], "--labels") && i + 1 < argc) {
            labels_path = argv[++i];
        } else {
            usage(argv[0]);
        }
    }
    if (batch < 1 || batch > 65536) usage(argv[0]);
    if (steps < 1) steps = 1;
    if (warmup < 0) warmup = 0;
    if (!images_path != !labels_path) usage(argv[0]);

    model_arch arch;
    if (model_arch_from_name(arch_name, &arch) != MODA_OK) {
        fprintf(stderr, "unknown architecture '%s'\n", arch_name);
        return 2;
    }
    model_config mc = model_config_default(arch);
    mc.width = width;
    mc.in_channels = IN_CHANNELS;
    mc.num_classes = NUM_CLASSES;
    mc.input_size = INPUT_SIZE;
    char why[200];
    if (model_validate(&mc, why, sizeof why) != MODA_OK) {
        fprintf(stderr, "%s\n", why);
        return 2;
    }

    const backend_options opts = cli_env_backend_options();
    moda_backend *be = backend_new(device, &opts, why, sizeof why);
    if (!be) {
        fprintf(stderr, "%s\n", why);
        return 1;
    }
    moda_status st;
    graph *g = model_build(be, &mc, &st);
    if (!g) check(st, "model_build");
    check(model_init(g, &mc, 0), "model_init");
    /* The order train_run sets up in. */
    sgd opt;
    moda_loss ml;
    check(sgd_init(&opt, g, 0.9f, 5e-4f, true), "sgd_init");
    check(graph_plan(g, batch), "graph_plan");
    check(moda_loss_init(&ml, g, batch, moda ? 1.0f : 0.0f, moda ? 1.0f : 0.0f, moda ? 0.3f : 0.0f),
          "moda_loss_init");

    const size_t per = (size_t)IN_CHANNELS * INPUT_SIZE * INPUT_SIZE;
    float *probs = backend_alloc(be, (size_t)batch * NUM_CLASSES * sizeof(float)); /* an op's output */
    if (!probs) check(MODA_ERR_NOMEM, "probs");
    float *logits = xmalloc((size_t)batch * NUM_CLASSES * sizeof(float));
    float *x;
    int32_t *y;
    int n_batches = 1;
    if (images_path) {
        size_t n_images = read_file(images_path, (void **)&x) / (per * sizeof(float));
        size_t n_labels = read_file(labels_path, (void **)&y) / sizeof(int32_t);
        n_batches = (int)((n_images < n_labels ? n_images : n_labels) / (size_t)batch);
        if (n_batches < 1) {
            fprintf(stderr, "%s and %s hold less than one batch\n", images_path, labels_path);
            return 1;
        }
        for (size_t i = 0; i < (size_t)n_batches * batch; i++)
            if (y[i] < 0 || y[i] >= NUM_CLASSES) {
                fprintf(stderr, "%s: label %d out of range\n", labels_path, (int)y[i]);
                return 1;
            }
    } else {
        x = xmalloc((size_t)batch * per * sizeof(float));
        y = xmalloc((size_t)batch * sizeof(int32_t));
        rng r;
        rng_seed(&r, 42, 0);
        rng_fill_normal(&r, x, (uint64_t)batch * per, 0.0f, 1.0f);
        for (int i = 0; i < batch; i++) y[i] = (int32_t)rng_below(&r, NUM_CLASSES);
    }

    const float lr = 0.05f;
    float ce = 0.0f;
    /* Step i trains on batch i (cycling when the file runs out). */
#define STEP(i)                                                                                               \
    check(train_step(g, &opt, &ml, x + (size_t)((i) % n_batches) * batch * per,                               \
                     y + (size_t)((i) % n_batches) * batch, batch, lr, probs, logits, &ce),                   \
          "train_step")
    for (int i = 0; i < warmup; i++) STEP(i);
    const double t0 = now_s();
    for (int i = 0; i < steps; i++) STEP(warmup + i);
#undef STEP
    const double secs = now_s() - t0;
    const double ips = (double)batch * steps / secs;
    const size_t params = graph_param_count(g);

    if (json)
        printf("{\"impl\": \"moda\", \"arch\": \"%s\", \"width\": %g, \"in_channels\": %d, \"input_size\": %d, "
               "\"num_classes\": %d, \"params\": %zu, \"batch\": %d, \"steps\": %d, \"warmup\": %d, "
               "\"moda\": %s, \"device\": \"%s\", \"seconds\": %.4f, \"ms_per_step\": %.2f, "
               "\"images_per_s\": %.2f, \"last_loss\": %.4f}\n",
               arch_name, (double)width, IN_CHANNELS, INPUT_SIZE, NUM_CLASSES, params, batch, steps, warmup,
               moda ? "true" : "false", backend_name(be), secs, secs / steps * 1e3, ips, (double)ce);
    else
        printf("%s width %g: %zu parameters, batch %d, %d steps in %.2f s (%.1f ms/step): %.1f images/s%s on %s\n",
               arch_name, (double)width, params, batch, steps, secs, secs / steps * 1e3, ips,
               moda ? " (MODA loss)" : "", backend_name(be));
    fflush(stdout);

    free(x);
    backend_dealloc(be, probs);
    free(logits);
    free(y);
    moda_loss_free(&ml);
    sgd_free(&opt);
    graph_free(g);
    backend_free(be);
    return 0;
}
