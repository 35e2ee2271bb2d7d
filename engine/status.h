/* Runtime status codes. Invariant violations use MODA_ASSERT (abort with
 * file:line); everything a caller can cause returns one of these. */
#ifndef MODA_STATUS_H
#define MODA_STATUS_H

#include <stdio.h>
#include <stdlib.h>

typedef enum moda_status {
    MODA_OK = 0,
    MODA_ERR_NULL,        /* a required pointer was NULL */
    MODA_ERR_SHAPE,       /* tensor shapes do not agree */
    MODA_ERR_ARG,         /* an argument is out of range */
    MODA_ERR_NOMEM,       /* allocation failed */
    MODA_ERR_IO,          /* a file could not be read or written */
    MODA_ERR_FORMAT,      /* a file or request is malformed */
    MODA_ERR_NOT_FOUND,   /* an unknown name */
    MODA_ERR_BACKEND,     /* the backend library reported a failure */
    MODA_ERR_UNSUPPORTED, /* valid request the backend cannot run */
    MODA_ERR_STATE,       /* call made in the wrong order */
    MODA_ERR_CANCELLED,   /* stopped at the caller's request */
} moda_status;

const char *moda_status_string(moda_status s);

#define MODA_ASSERT(cond)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* Propagate a non-OK status to the caller. */
#define MODA_TRY(expr)                                                        \
    do {                                                                      \
        moda_status s_ = (expr);                                              \
        if (s_ != MODA_OK) return s_;                                         \
    } while (0)

#endif
