#include <stdint.h>

#include "ops.h"

#include "backend_impl.h"

static moda_status pool_params_check(const pool2d_params *p) {
    if (!p) return MODA_ERR_NULL;
    if (p->kh < 1 || p->kw < 1 || p->stride_h < 1 || p->stride_w < 1) return MODA_ERR_ARG;
    /* pad < kernel keeps at least one real input in every window. */
    if (p->pad_h < 0 || p->pad_w < 0 || p->pad_h >= p->kh || p->pad_w >= p->kw) return MODA_ERR_ARG;
    return MODA_OK;
}

/* x (N,C,H,W) and y (N,C,OH,OW) with OH, OW the pooled sizes. */
static moda_status pool_shapes_check(const tensor *y, const tensor *x, const pool2d_params *p) {
    MODA_TRY(tensor_check(y));
    MODA_TRY(tensor_check(x));
    if (x->ndim != 4 || y->ndim != 4) return MODA_ERR_SHAPE;
    /* The workspace stores an int32 index inside each (n, c) plane. */
    if ((int64_t)x->shape[2] * x->shape[3] > INT32_MAX) return MODA_ERR_SHAPE;
    int oh = conv_out_size(x->shape[2], p->kh, p->stride_h, p->pad_h);
    int ow = conv_out_size(x->shape[3], p->kw, p->stride_w, p->pad_w);
    if (oh <= 0 || ow <= 0) return MODA_ERR_SHAPE;
    if (y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] || y->shape[2] != oh || y->shape[3] != ow)
        return MODA_ERR_SHAPE;
    return MODA_OK;
}

size_t maxpool2d_ws_bytes(moda_backend *be, const tensor *y) {
    if (!be || !be->maxpool2d_ws_bytes || tensor_check(y) != MODA_OK || y->ndim != 4) return 0;
    return be->maxpool2d_ws_bytes(be, y);
}

moda_status maxpool2d_fwd(moda_backend *be, tensor *y, void *ws, const tensor *x, const pool2d_params *p) {
    if (!be || !ws) return MODA_ERR_NULL;
    MODA_TRY(pool_params_check(p));
    MODA_TRY(pool_shapes_check(y, x, p));
    if (!be->maxpool2d_fwd) return MODA_ERR_UNSUPPORTED;
    return be->maxpool2d_fwd(be, y, ws, x, p);
}

moda_status maxpool2d_bwd(moda_backend *be, tensor *dx, const tensor *dy, const void *ws,
                          const pool2d_params *p) {
    if (!be || !ws) return MODA_ERR_NULL;
    MODA_TRY(pool_params_check(p));
    MODA_TRY(pool_shapes_check(dy, dx, p));
    if (!be->maxpool2d_bwd) return MODA_ERR_UNSUPPORTED;
    return be->maxpool2d_bwd(be, dx, dy, ws, p);
}
