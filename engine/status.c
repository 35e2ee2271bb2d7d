#include "status.h"

const char *moda_status_string(moda_status s) {
    switch (s) {
    case MODA_OK: return "ok";
    case MODA_ERR_NULL: return "null pointer";
    case MODA_ERR_SHAPE: return "shape mismatch";
    case MODA_ERR_ARG: return "invalid argument";
    case MODA_ERR_NOMEM: return "out of memory";
    case MODA_ERR_IO: return "i/o error";
    case MODA_ERR_FORMAT: return "malformed data";
    case MODA_ERR_NOT_FOUND: return "not found";
    case MODA_ERR_BACKEND: return "backend failure";
    case MODA_ERR_UNSUPPORTED: return "unsupported";
    case MODA_ERR_STATE: return "invalid state";
    case MODA_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}
