/* The composed-id parser: any bytes (up to the first NUL) either fail with
 * an error code, or parse into parts (the composition mode included) that
 * format back to an id parsing to the very same parts. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *id = malloc(size + 1);
    if (!id) return 0;
    memcpy(id, data, size);
    id[size] = '\0';
    char model[REGISTRY_NAME_MAX + 1];
    int *classes = NULL, n = 0;
    float tau = 0;
    compose_mode mode = COMPOSE_TIED;
    api_error e = {0};
    if (api_id_parse(id, model, &classes, &n, &tau, &mode, &e)) {
        if (!e.code || classes) abort(); /* a failure says why and hands nothing out */
        free(id);
        return 0;
    }
    if (n < 1 || !classes || !isfinite(tau) || strchr(model, '~') || (mode != COMPOSE_TIED && mode != COMPOSE_PER_LAYER))
        abort();
    /* The canonical form of what was parsed names the same model. */
    size_t cap = strlen(model) + (size_t)n * 12 + 64;
    char *again = malloc(cap);
    if (!again || !api_id_format(again, cap, model, classes, n, tau, mode)) abort();
    char model2[REGISTRY_NAME_MAX + 1];
    int *classes2 = NULL, n2 = 0;
    float tau2 = 0;
    compose_mode mode2 = COMPOSE_TIED;
    api_error e2 = {0};
    if (api_id_parse(again, model2, &classes2, &n2, &tau2, &mode2, &e2) || strcmp(model, model2) || n != n2 ||
        memcmp(classes, classes2, (size_t)n * sizeof(int)) || tau != tau2 || mode != mode2) {
        fprintf(stderr, "\"%s\" parsed, but its canonical form \"%s\" does not parse back the same\n", id, again);
        abort();
    }
    free(classes2);
    free(again);
    free(classes);
    free(id);
    return 0;
}
