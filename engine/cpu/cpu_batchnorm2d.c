#include "cpu_internal.h"

moda_status cpu_batchnorm2d_fwd_train(moda_backend *be, tensor *y, tensor *save_mean, tensor *save_var, tensor *running_mean, tensor *running_var, const tensor *x, const tensor *gamma, const tensor *beta, const batchnorm_params *p) {
    (void)be; (void)y; (void)save_mean; (void)save_var; (void)running_mean; (void)running_var; (void)x; (void)gamma; (void)beta; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status cpu_batchnorm2d_fwd_eval(moda_backend *be, tensor *y, const tensor *x, const tensor *gamma, const tensor *beta, const tensor *running_mean, const tensor *running_var, const batchnorm_params *p) {
    (void)be; (void)y; (void)x; (void)gamma; (void)beta; (void)running_mean; (void)running_var; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status cpu_batchnorm2d_bwd(moda_backend *be, tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *dy, const tensor *x, const tensor *gamma, const tensor *save_mean, const tensor *save_var, const batchnorm_params *p) {
    (void)be; (void)dx; (void)dgamma; (void)dbeta; (void)dy; (void)x; (void)gamma; (void)save_mean; (void)save_var; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

