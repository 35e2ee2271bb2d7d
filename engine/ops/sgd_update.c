#include "ops.h"

#include "backend_impl.h"

moda_status sgd_update(moda_backend *be, float *param, float *velocity, const float *grad, size_t n, float lr,
                       float momentum, float weight_decay, bool nesterov) {
    if (!be || (n && (!param || !velocity || !grad))) return MODA_ERR_NULL;
    if (!be->sgd_update) return MODA_ERR_UNSUPPORTED;
    return be->sgd_update(be, param, velocity, grad, n, lr, momentum, weight_decay, nesterov);
}
