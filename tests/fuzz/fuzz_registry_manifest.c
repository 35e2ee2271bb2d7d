/* A model's manifest.json, as the registry loads it: parsed and checked,
 * then the model it describes built (or, for a composed model, replayed
 * from its node list) and compared with the architecture it records. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"
#include "registry_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static moda_backend *be;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[512];
    if (!(be = backend_new("cpu", NULL, err, sizeof err))) {
        fprintf(stderr, "backend_new: %s\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The loader reads at most this much and refuses a NUL byte. */
    if (size > REGISTRY_MANIFEST_MAX_BYTES || memchr(data, 0, size)) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    registry_model m = {0};
    registry_file_info files[REGISTRY_N_FILES];
    json_t *arch = NULL;
    char err[1024] = "";
    moda_status s = registry_manifest_parse(text, "manifest.json", "fmnist-lenet5", &m, files, &arch, err, sizeof err);
    if (s != MODA_OK && !err[0]) abort(); /* an error always says why */
    if (s == MODA_OK && !m.patched) {
        if (m.composed) {
            s = registry_graph_replay(arch, &m.info, be, "manifest.json", &m.g, err, sizeof err);
        } else if ((m.g = model_build(be, &m.info.model, &s)) != NULL) {
            s = registry_manifest_check_graph(arch, m.g, "the architecture fields", "manifest.json", err, sizeof err);
        }
    }
    /* MODA_FUZZ_PRINT=1: how far an input got. */
    if (getenv("MODA_FUZZ_PRINT")) fprintf(stderr, "%s\n", s == MODA_OK ? "loaded" : err);
    json_decref(arch);
    registry_model_free(&m);
    free(text);
    return 0;
}
