/* What the API's answers are checked against: the bundled registry's model
 * loaded directly, and the output of a model composed from it through the
 * engine (no cache, no handles). Header-only, like test_util.h. */
#ifndef MODA_COMPOSED_REFERENCE_H
#define MODA_COMPOSED_REFERENCE_H

#include "test_util.h"

#include "compose.h"
#include "registry.h"

/* Model `name` of the bundled registry, loaded on a new backend. 0, or -1
 * with the reason on stderr. */
static inline int reference_open(const char *name, registry **reg, moda_backend **be, registry_model *parent) {
    char err[512] = "";
    *be = backend_cpu_new();
    if (!*be || registry_open(MODA_MODELS_DIR, NULL, reg, err, sizeof err) != MODA_OK ||
        registry_load_model(*reg, name, *be, parent, err, sizeof err) != MODA_OK) {
        fprintf(stderr, "registry: %s\n", err);
        return -1;
    }
    return 0;
}

static inline void reference_close(registry *reg, moda_backend *be, registry_model *parent) {
    registry_model_free(parent);
    registry_close(reg);
    backend_free(be);
}

/* Probabilities (softmax in double; malloc'd, n x |classes|) of the model
 * composed from parent for classes at tau (n_cls 0: the parent itself) on
 * x (n samples); its logits too when logits_out is non-NULL. */
static inline float *reference_probs_of(const registry_model *parent, moda_backend *be, const int *classes,
                                        int n_cls, float tau, const float *x, int n, float *logits_out) {
    graph *c = parent->g;
    compose_plan p = {0};
    if (n_cls) {
        assert_int_equal(compose_plan_make(parent->g, &parent->r, classes, n_cls, tau, &p), MODA_OK);
        assert_int_equal(compose_build(parent->g, &p, be, &c), MODA_OK);
    }
    int k = graph_output(c)->c;
    assert_int_equal(graph_plan(c, n), MODA_OK);
    assert_int_equal(graph_forward(c, x, n, false), MODA_OK);
    const float *z = graph_output(c)->out.data;
    float *probs = tu_alloc((size_t)n * k);
    for (int i = 0; i < n; i++) {
        double mx = z[i * k], sum = 0;
        for (int j = 0; j < k; j++) mx = z[i * k + j] > mx ? z[i * k + j] : mx;
        for (int j = 0; j < k; j++) sum += exp((double)z[i * k + j] - mx);
        for (int j = 0; j < k; j++) probs[i * k + j] = (float)(exp((double)z[i * k + j] - mx) / sum);
        if (logits_out) memcpy(logits_out + i * k, z + i * k, (size_t)k * sizeof(float));
    }
    if (n_cls) graph_free(c);
    compose_plan_free(&p);
    return probs;
}

#endif
