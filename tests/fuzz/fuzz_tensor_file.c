/* The registry's weights and rates files: safetensors inside zstd. Input
 * that starts with zstd's frame magic is decompressed first (corrupt
 * frames fail their checksum, so raw safetensors input is taken as well,
 * to reach the parser past the checksum); the image is parsed, every
 * tensor copied out, and then loaded as the weights and as the rates of
 * the bundled LeNet5, as the registry loads them. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decompose.h"
#include "registry_internal.h"
#include "zstd_io.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static moda_backend *be;
static registry_model lenet; /* its graph takes the fuzzed weights */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[1024];
    registry *reg = NULL;
    if (!(be = backend_new("cpu", NULL, err, sizeof err)) ||
        registry_open(MODA_MODELS_DIR, NULL, &reg, err, sizeof err) != MODA_OK ||
        registry_load_model(reg, "fmnist-lenet5", be, &lenet, err, sizeof err) != MODA_OK) {
        fprintf(stderr, "opening the bundled model: %s\n", err);
        abort();
    }
    registry_close(reg);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    char err[1024] = "";
    uint8_t *image = NULL;
    size_t len = 0;
    if (size >= 4 && !memcmp(data, zstd_magic, 4)) {
        if (zstdio_decompress(data, size, (size_t)16 << 20, "fuzz.safetensors.zst", &image, &len, err, sizeof err) !=
            MODA_OK) {
            if (!err[0] || image) abort();
            return 0;
        }
    } else {
        if (!(image = malloc(size ? size : 1))) return 0;
        memcpy(image, data, size);
        len = size;
    }
    safetensors_file *f = NULL;
    if (safetensors_parse_owned(image, len, "fuzz.safetensors", &f, err, sizeof err) != MODA_OK) {
        if (!err[0] || f) abort();
        return 0;
    }
    for (int i = 0; i < safetensors_count(f); i++) {
        const safetensors_tensor *t = safetensors_at(f, i);
        void *dst = malloc(t->nbytes ? t->nbytes : 1);
        if (!dst) continue;
        if (safetensors_copy(t, dst, t->nbytes) != MODA_OK) abort();
        free(dst);
    }
    for (int i = 0; i < safetensors_meta_count(f); i++) {
        const char *k, *v;
        if (!safetensors_meta_at(f, i, &k, &v) || safetensors_meta_get(f, k) == NULL) abort();
    }
    (void)registry_weights_load(f, "fuzz.safetensors", lenet.g, err, sizeof err);
    rates r = {0};
    if (registry_rates_load(f, "fuzz.safetensors", lenet.g, lenet.info.model.num_classes, &r, err, sizeof err) ==
        MODA_OK)
        rates_free(&r);
    safetensors_free(f);
    return 0;
}
