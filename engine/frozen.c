/* Frozen plans: argument checks, then the backend's implementation. */
#include "frozen.h"

#include <stdlib.h>

#include "backend_impl.h"

struct frozen {
    moda_backend *be; /* not owned */
    const backend_frozen_ops *ops;
    void *impl; /* the backend's plan, owned */
    int max_batch;
    int classes;
};

moda_status frozen_new(const graph *g, moda_backend *be, int max_batch, frozen **out) {
    if (!out) return MODA_ERR_NULL;
    *out = NULL;
    if (!g || !be) return MODA_ERR_NULL;
    if (!g->finalized) return MODA_ERR_STATE;
    if (max_batch < 1) return MODA_ERR_ARG;
    if (!be->frozen) return MODA_ERR_UNSUPPORTED;
    frozen *f = calloc(1, sizeof(*f));
    if (!f) return MODA_ERR_NOMEM;
    f->be = be;
    f->ops = be->frozen;
    f->max_batch = max_batch;
    f->classes = g->nodes[g->output].c;
    moda_status s = f->ops->build(be, g, max_batch, &f->impl);
    if (s != MODA_OK) {
        free(f);
        return s;
    }
    *out = f;
    return MODA_OK;
}

void frozen_free(frozen *f) {
    if (!f) return;
    f->ops->destroy(f->impl);
    free(f);
}

moda_status frozen_prepare(frozen *f, int n) {
    if (!f) return MODA_ERR_NULL;
    if (n < 1 || n > f->max_batch) return MODA_ERR_ARG;
    return f->ops->prepare(f->impl, n);
}

moda_status frozen_run(frozen *f, const float *x, int n, float *logits) {
    if (!f || !x || !logits) return MODA_ERR_NULL;
    if (n < 1 || n > f->max_batch) return MODA_ERR_ARG;
    return f->ops->run(f->impl, x, n, logits);
}

void frozen_set_small_batch_threads(frozen *f, int small_n, int threads) {
    if (f && small_n >= 0 && threads >= FROZEN_THREADS_MEASURE) f->ops->set_small_batch_threads(f->impl, small_n, threads);
}

int frozen_max_batch(const frozen *f) { return f ? f->max_batch : 0; }
int frozen_classes(const frozen *f) { return f ? f->classes : 0; }
size_t frozen_bytes(const frozen *f) { return f ? f->ops->bytes(f->impl) : 0; }
int frozen_reorders(const frozen *f, int n) { return f ? f->ops->reorders(f->impl, n) : -1; }
int frozen_steps(const frozen *f, int n) { return f ? f->ops->steps(f->impl, n) : -1; }
int frozen_threads(const frozen *f, int n) { return f ? f->ops->threads(f->impl, n) : -1; }
