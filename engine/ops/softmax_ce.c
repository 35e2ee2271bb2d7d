#include <math.h>

#include "ops.h"

#include "backend_impl.h"

/* t is (N,K) like ref, and every label is a class index in [0,K). */
static moda_status ce_check(const tensor *t, const tensor *ref, const int32_t *labels) {
    MODA_TRY(tensor_check(t));
    MODA_TRY(tensor_check(ref));
    if (!labels) return MODA_ERR_NULL;
    if (ref->ndim != 2 || !tensor_same_shape(t, ref)) return MODA_ERR_SHAPE;
    for (int i = 0; i < ref->shape[0]; i++)
        if (labels[i] < 0 || labels[i] >= ref->shape[1]) return MODA_ERR_ARG;
    return MODA_OK;
}

moda_status softmax_ce_fwd(moda_backend *be, float *loss, tensor *probs, const tensor *logits,
                           const int32_t *labels) {
    if (!be || !loss) return MODA_ERR_NULL;
    MODA_TRY(ce_check(probs, logits, labels));
    if (!be->softmax_ce_fwd) return MODA_ERR_UNSUPPORTED;
    return be->softmax_ce_fwd(be, loss, probs, logits, labels);
}

moda_status softmax_ce_bwd(moda_backend *be, tensor *dlogits, const tensor *probs, const int32_t *labels,
                           float scale) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(ce_check(dlogits, probs, labels));
    if (!isfinite(scale)) return MODA_ERR_ARG;
    if (!be->softmax_ce_bwd) return MODA_ERR_UNSUPPORTED;
    return be->softmax_ce_bwd(be, dlogits, probs, labels, scale);
}
