/* What a composed model records about its parent: the origin and the
 * model info it inherits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

void registry_origin_free(registry_origin *o) {
    if (!o) return;
    free(o->classes);
    memset(o, 0, sizeof(*o));
}

/* n classes, each in [0, limit) and given once. */
static bool classes_valid(const int *classes, int n, int limit) {
    if (!classes || n < 1 || n > limit) return false;
    bool *seen = calloc((size_t)limit, sizeof(bool));
    bool ok = seen != NULL;
    for (int i = 0; ok && i < n; i++) {
        ok = classes[i] >= 0 && classes[i] < limit && !seen[classes[i]];
        if (ok) seen[classes[i]] = true;
    }
    free(seen);
    return ok;
}

bool registry_origin_valid(const registry_origin *o, int num_classes) {
    return o && registry_name_valid(o->model) && registry_is_sha256_hex(o->manifest_sha256) && o->tau >= 0.0f &&
           o->tau <= 1.0f && o->n_classes == num_classes &&
           classes_valid(o->classes, o->n_classes, REGISTRY_MAX_CLASSES);
}

moda_status registry_composed_info(const registry_model *parent, const int *classes, int n, float tau,
                                   model_info *mi, registry_origin *origin) {
    if (!parent || !classes || !mi || !origin) return MODA_ERR_NULL;
    memset(mi, 0, sizeof(*mi));
    memset(origin, 0, sizeof(*origin));
    const model_info *pi = &parent->info;
    int k = pi->model.num_classes;
    if (!pi->class_names || !classes_valid(classes, n, k) || !(tau >= 0.0f && tau <= 1.0f) ||
        !registry_name_valid(parent->name) || !registry_is_sha256_hex(parent->manifest_sha256))
        return MODA_ERR_ARG;
    *mi = *pi;
    mi->model.num_classes = n;
    mi->class_names = calloc((size_t)n, sizeof(char *));
    origin->classes = malloc((size_t)n * sizeof(int));
    moda_status s = mi->class_names && origin->classes ? MODA_OK : MODA_ERR_NOMEM;
    for (int j = 0; s == MODA_OK && j < n; j++)
        if (!(mi->class_names[j] = strdup(pi->class_names[classes[j]]))) s = MODA_ERR_NOMEM;
    if (s != MODA_OK) {
        model_info_free(mi);
        registry_origin_free(origin);
        return s;
    }
    memcpy(origin->classes, classes, (size_t)n * sizeof(int));
    origin->n_classes = n;
    origin->tau = tau;
    snprintf(origin->model, sizeof origin->model, "%s", parent->name);
    snprintf(origin->manifest_sha256, sizeof origin->manifest_sha256, "%s", parent->manifest_sha256);
    return MODA_OK;
}
