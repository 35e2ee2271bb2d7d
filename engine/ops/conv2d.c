/* conv2d: argument validation, then dispatch to the backend.
 * x (N,C,H,W), w (K, C/groups, kh, kw), b (K) or NULL, y (N,K,Ho,Wo). */
#include "ops.h"

#include "backend_impl.h"

int conv_out_size(int in, int k, int stride, int pad) {
    if (in <= 0 || k <= 0 || stride <= 0 || pad < 0) return 0;
    /* 64-bit so huge paddings cannot overflow; C division truncates toward
     * zero, so a window that does not fit is caught before dividing. */
    const long long span = (long long)in + 2LL * pad - k;
    if (span < 0) return 0;
    const long long out = span / stride + 1;
    return out > 0x7fffffff ? 0 : (int)out;
}

/* Checks shared by forward and backward: x, w, optional bias of shape (K),
 * and the output/gradient-of-output tensor `y` against the parameters. */
static moda_status conv_check(const tensor *y, const tensor *x, const tensor *w, const tensor *b,
                              const conv2d_params *p) {
    MODA_TRY(tensor_check(x));
    MODA_TRY(tensor_check(w));
    MODA_TRY(tensor_check(y));
    if (b) MODA_TRY(tensor_check(b));
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4 || (b && b->ndim != 1)) return MODA_ERR_SHAPE;
    if (p->kh < 1 || p->kw < 1 || p->stride_h < 1 || p->stride_w < 1 || p->pad_h < 0 || p->pad_w < 0 ||
        p->groups < 1)
        return MODA_ERR_ARG;
    const int n = x->shape[0], c = x->shape[1], h = x->shape[2], wi = x->shape[3];
    const int k = w->shape[0];
    if (c % p->groups != 0 || k % p->groups != 0) return MODA_ERR_ARG;
    if (w->shape[1] != c / p->groups || w->shape[2] != p->kh || w->shape[3] != p->kw) return MODA_ERR_SHAPE;
    if (b && b->shape[0] != k) return MODA_ERR_SHAPE;
    const int ho = conv_out_size(h, p->kh, p->stride_h, p->pad_h);
    const int wo = conv_out_size(wi, p->kw, p->stride_w, p->pad_w);
    if (ho <= 0 || wo <= 0) return MODA_ERR_SHAPE;
    if (y->shape[0] != n || y->shape[1] != k || y->shape[2] != ho || y->shape[3] != wo) return MODA_ERR_SHAPE;
    return MODA_OK;
}

moda_status conv2d_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b,
                       const conv2d_params *p) {
    if (!be || !y || !x || !w || !p) return MODA_ERR_NULL;
    MODA_TRY(conv_check(y, x, w, b, p));
    if (!be->conv2d_fwd) return MODA_ERR_UNSUPPORTED;
    return be->conv2d_fwd(be, y, x, w, b, p);
}

moda_status conv2d_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                       const tensor *x, const tensor *w, const conv2d_params *p) {
    if (!be || !dy || !x || !w || !p) return MODA_ERR_NULL;
    MODA_TRY(conv_check(dy, x, w, db, p));
    if (dx) {
        MODA_TRY(tensor_check(dx));
        if (!tensor_same_shape(dx, x)) return MODA_ERR_SHAPE;
    }
    if (dw) {
        MODA_TRY(tensor_check(dw));
        if (!tensor_same_shape(dw, w)) return MODA_ERR_SHAPE;
    }
    if (!be->conv2d_bwd) return MODA_ERR_UNSUPPORTED;
    return be->conv2d_bwd(be, dx, dw, db, dy, x, w, p);
}
