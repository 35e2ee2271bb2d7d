#include "cpu_internal.h"

moda_status cpu_softmax_ce_fwd(moda_backend *be, float *loss, tensor *probs, const tensor *logits, const int32_t *labels) {
    (void)be; (void)loss; (void)probs; (void)logits; (void)labels;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status cpu_softmax_ce_bwd(moda_backend *be, tensor *dlogits, const tensor *probs, const int32_t *labels, float scale) {
    (void)be; (void)dlogits; (void)probs; (void)labels; (void)scale;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

