#include "cpu_internal.h"

/* PyTorch's SGD: g' = g + wd*p; v = mu*v + g'; step = nesterov ? g' + mu*v : v. */
moda_status cpu_sgd_update(moda_backend *be, float *param, float *velocity, const float *grad, size_t n,
                           float lr, float momentum, float weight_decay, bool nesterov) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + weight_decay * param[i];
        float v = momentum * velocity[i] + g;
        velocity[i] = v;
        param[i] -= lr * (nesterov ? g + momentum * v : v);
    }
    return MODA_OK;
}
