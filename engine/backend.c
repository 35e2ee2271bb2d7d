/* Choosing a backend by name, and the CUDA entry points of a build
 * without CUDA. */
#include <stdio.h>
#include <string.h>

#include "backend.h"

#ifndef MODA_HAVE_CUDA
moda_backend *backend_cuda_new(int device) {
    (void)device;
    return NULL;
}

bool backend_cuda_available(void) { return false; }
#endif

bool backend_name_known(const char *name) {
    return name && (strcmp(name, "cpu") == 0 || strcmp(name, "cuda") == 0 || strcmp(name, "auto") == 0);
}

moda_backend *backend_new(const char *name, char *err, size_t errlen) {
    if (!name || strcmp(name, "auto") == 0) name = backend_cuda_available() ? "cuda" : "cpu";
    moda_backend *be = NULL;
    if (strcmp(name, "cpu") == 0) {
        be = backend_cpu_new();
        if (!be) snprintf(err, errlen, "the CPU backend could not start (out of memory?)");
    } else if (strcmp(name, "cuda") == 0) {
#ifdef MODA_HAVE_CUDA
        be = backend_cuda_new(0);
        if (!be) snprintf(err, errlen, "the CUDA backend could not start: no usable GPU, or cuDNN/cuBLAS failed");
#else
        snprintf(err, errlen, "this build has no CUDA backend (configure with -DMODA_CUDA=ON)");
#endif
    } else {
        snprintf(err, errlen, "unknown device '%s' (expected cpu, cuda or auto)", name);
    }
    return be;
}

void backend_free(moda_backend *be) {
    if (be) be->destroy(be);
}
