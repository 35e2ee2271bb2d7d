#include "ops.h"

#include "backend_impl.h"

/* x (N,I), w (O,I): the two rank-2 operands every linear call needs. */
static moda_status linear_check_xw(const tensor *x, const tensor *w) {
    MODA_TRY(tensor_check(x));
    MODA_TRY(tensor_check(w));
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[1]) return MODA_ERR_SHAPE;
    return MODA_OK;
}

static moda_status check_2d(const tensor *t, int rows, int cols) {
    MODA_TRY(tensor_check(t));
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) return MODA_ERR_SHAPE;
    return MODA_OK;
}

static moda_status check_1d(const tensor *t, int n) {
    MODA_TRY(tensor_check(t));
    if (t->ndim != 1 || t->shape[0] != n) return MODA_ERR_SHAPE;
    return MODA_OK;
}

moda_status linear_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(linear_check_xw(x, w));
    MODA_TRY(check_2d(y, x->shape[0], w->shape[0]));
    if (b) MODA_TRY(check_1d(b, w->shape[0]));
    if (!be->linear_fwd) return MODA_ERR_UNSUPPORTED;
    return be->linear_fwd(be, y, x, w, b);
}

moda_status linear_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                       const tensor *x, const tensor *w) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(linear_check_xw(x, w));
    int n = x->shape[0], in = x->shape[1], out = w->shape[0];
    MODA_TRY(check_2d(dy, n, out));
    if (dx) MODA_TRY(check_2d(dx, n, in));
    if (dw) MODA_TRY(check_2d(dw, out, in));
    if (db) MODA_TRY(check_1d(db, out));
    if (!be->linear_bwd) return MODA_ERR_UNSUPPORTED;
    return be->linear_bwd(be, dx, dw, db, dy, x, w);
}
