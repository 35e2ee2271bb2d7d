#include <math.h>

#include "ops.h"

#include "backend_impl.h"

static moda_status bn_params_check(const batchnorm_params *p) {
    if (!p) return MODA_ERR_NULL;
    if (!(p->eps > 0.0f) || !isfinite(p->eps)) return MODA_ERR_ARG;
    if (!(p->momentum >= 0.0f && p->momentum <= 1.0f)) return MODA_ERR_ARG;
    return MODA_OK;
}

/* a is (N,C,H,W) like x. */
static moda_status check_like(const tensor *a, const tensor *x) {
    MODA_TRY(tensor_check(a));
    return tensor_same_shape(a, x) ? MODA_OK : MODA_ERR_SHAPE;
}

/* t is a per-channel vector (C). */
static moda_status check_channels(const tensor *t, int c) {
    MODA_TRY(tensor_check(t));
    return t->ndim == 1 && t->shape[0] == c ? MODA_OK : MODA_ERR_SHAPE;
}

static moda_status check_input(const tensor *x) {
    MODA_TRY(tensor_check(x));
    return x->ndim == 4 ? MODA_OK : MODA_ERR_SHAPE;
}

moda_status batchnorm2d_fwd_train(moda_backend *be, tensor *y, tensor *save_mean, tensor *save_var,
                                  tensor *running_mean, tensor *running_var, const tensor *x,
                                  const tensor *gamma, const tensor *beta, const batchnorm_params *p) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(bn_params_check(p));
    MODA_TRY(check_input(x));
    int c = x->shape[1];
    MODA_TRY(check_like(y, x));
    const tensor *vecs[] = {save_mean, save_var, running_mean, running_var, gamma, beta};
    for (int i = 0; i < 6; i++) MODA_TRY(check_channels(vecs[i], c));
    /* The unbiased running variance needs two values per channel (PyTorch
     * refuses this case too). */
    if ((long long)x->shape[0] * x->shape[2] * x->shape[3] < 2) return MODA_ERR_SHAPE;
    if (!be->batchnorm2d_fwd_train) return MODA_ERR_UNSUPPORTED;
    return be->batchnorm2d_fwd_train(be, y, save_mean, save_var, running_mean, running_var, x, gamma, beta,
                                     p);
}

moda_status batchnorm2d_fwd_eval(moda_backend *be, tensor *y, const tensor *x, const tensor *gamma,
                                 const tensor *beta, const tensor *running_mean, const tensor *running_var,
                                 const batchnorm_params *p) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(bn_params_check(p));
    MODA_TRY(check_input(x));
    int c = x->shape[1];
    MODA_TRY(check_like(y, x));
    const tensor *vecs[] = {gamma, beta, running_mean, running_var};
    for (int i = 0; i < 4; i++) MODA_TRY(check_channels(vecs[i], c));
    if (!be->batchnorm2d_fwd_eval) return MODA_ERR_UNSUPPORTED;
    return be->batchnorm2d_fwd_eval(be, y, x, gamma, beta, running_mean, running_var, p);
}

moda_status batchnorm2d_bwd(moda_backend *be, tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *dy,
                            const tensor *x, const tensor *gamma, const tensor *save_mean,
                            const tensor *save_var, const batchnorm_params *p) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(bn_params_check(p));
    MODA_TRY(check_input(x));
    int c = x->shape[1];
    MODA_TRY(check_like(dy, x));
    const tensor *vecs[] = {gamma, save_mean, save_var};
    for (int i = 0; i < 3; i++) MODA_TRY(check_channels(vecs[i], c));
    if (dx) MODA_TRY(check_like(dx, x));
    if (dgamma) MODA_TRY(check_channels(dgamma, c));
    if (dbeta) MODA_TRY(check_channels(dbeta, c));
    if (!be->batchnorm2d_bwd) return MODA_ERR_UNSUPPORTED;
    return be->batchnorm2d_bwd(be, dx, dgamma, dbeta, dy, x, gamma, save_mean, save_var, p);
}
