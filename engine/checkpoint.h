/* Checkpoints: one safetensors file holding every parameter and buffer of
 * the model under its PyTorch-style name, the optimiser's momentum buffers
 * ("optim.<name>.momentum_buffer"), and a JSON document under the metadata
 * key "moda" that says how to rebuild the model and its preprocessing and
 * where training stands. Written atomically. */
#ifndef MODA_CHECKPOINT_H
#define MODA_CHECKPOINT_H

#include <stdbool.h>

#include "graph.h"
#include "model_info.h"
#include "optim.h"

#define CHECKPOINT_FORMAT 1
#define CHECKPOINT_MAX_BYTES ((size_t)4 << 30)

/* Write g's parameters, opt's momentum (NULL: none) and the metadata JSON
 * (a complete JSON object, see train.c) to path, atomically. */
moda_status checkpoint_save(const char *path, const graph *g, const sgd *opt, const char *meta_json, char *err,
                            size_t errlen);

/* A loaded checkpoint: the model rebuilt and its weights loaded. */
typedef struct checkpoint {
    graph *g;          /* owned */
    model_info info;   /* owned */
    char *meta_json;   /* owned copy of the "moda" document */
    void *file;        /* the parsed safetensors file, owned */
} checkpoint;

/* Opens path, validates it, builds the model on be and loads every
 * parameter (shapes checked). The optimiser state stays in the file until
 * checkpoint_load_optimizer(). */
moda_status checkpoint_open(const char *path, moda_backend *be, checkpoint *ck, char *err, size_t errlen);
moda_status checkpoint_load_optimizer(const checkpoint *ck, sgd *opt, char *err, size_t errlen);
void checkpoint_close(checkpoint *ck); /* accepts NULL */

#endif
