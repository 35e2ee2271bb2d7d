/* A tiny registry for command tests: LeNet5 models trained for a few
 * epochs on the synthetic 4-class IDX data of synthetic_idx.h, at 16x16,
 * and decomposed into <root>/registry. Header-only, like test_util.h. */
#ifndef MODA_TINY_REGISTRY_H
#define MODA_TINY_REGISTRY_H

#include "test_util.h"

#include "cmd_registry.h"
#include "synthetic_idx.h"
#include "train.h"

/* Runs a subcommand with a NULL-terminated argv; its exit code. */
static inline int tiny_run_cmd(int (*cmd)(int, char **), const char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    return cmd(argc, (char **)argv);
}

/* Trains model `name` on <root>/data (standard, or MODA's losses) and
 * writes it to <root>/registry. */
static inline void tiny_train_into_registry(const char *root, const char *name, bool moda, int epochs,
                                            uint64_t seed) {
    char data[300], names[320], out[300], ckpt[340], reg[300], err[1024];
    snprintf(data, sizeof data, "%.280s/data", root);
    snprintf(names, sizeof names, "%s/names.txt", data);
    snprintf(out, sizeof out, "%.200s/runs/%.64s", root, name);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(reg, sizeof reg, "%.280s/registry", root);
    train_options o = train_options_default();
    o.dataset = "idx";
    o.data_dir = data;
    o.names = names;
    o.input_size = 16;
    o.epochs = epochs;
    o.batch_size = 32;
    o.seed = seed;
    o.out_dir = out;
    if (moda) {
        o.alpha = o.beta = 1.0f;
        o.gamma = 0.3f;
    }
    if (train_run(&o, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    const char *argv[] = {"moda", "decompose", "--checkpoint", ckpt, "--out", reg, "--name", name, NULL};
    assert_int_equal(tiny_run_cmd(cmd_decompose, argv), 0);
}

/* A fresh root (from a mkdtemp template such as "/tmp/moda-x-XXXXXX", in
 * root, rewritten) with the synthetic data in <root>/data and two models in
 * <root>/registry: "strong" (MODA, 3 epochs) and "weak" (standard, 1
 * epoch). reg and data (300 bytes each) receive their paths. */
static inline int tiny_weak_strong(char *root, char *reg, char *data) {
    if (!mkdtemp(root) || synth_make_data(root, 256, 80) != 0) return -1;
    snprintf(reg, 300, "%.280s/registry", root);
    snprintf(data, 300, "%.280s/data", root);
    tiny_train_into_registry(root, "strong", true, 3, 5);
    tiny_train_into_registry(root, "weak", false, 1, 5);
    return 0;
}

#endif
