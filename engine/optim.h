/* SGD with momentum (optionally Nesterov) and weight decay, PyTorch's
 * update rule, plus the cosine learning-rate schedule. The velocity of each
 * trainable parameter lives in one slab so a checkpoint can save it and a
 * resumed run continues bit for bit. */
#ifndef MODA_OPTIM_H
#define MODA_OPTIM_H

#include <stdbool.h>

#include "graph.h"

typedef struct sgd {
    float momentum;
    float weight_decay;
    bool nesterov;
    arena velocity_slab;
    float **velocity; /* per graph param; NULL for non-trainable; owned array */
    int n_params;
} sgd;

/* Also allocates g's gradient slab. */
moda_status sgd_init(sgd *opt, graph *g, float momentum, float weight_decay, bool nesterov);
void sgd_free(sgd *opt); /* accepts NULL */
/* One step over every trainable parameter using the gradients in g. */
moda_status sgd_step(sgd *opt, graph *g, float lr);

/* Cosine annealing from base_lr at epoch 0 to 0 at epoch `epochs`
 * (PyTorch's CosineAnnealingLR stepped once per epoch, eta_min 0). */
float cosine_lr(float base_lr, int epoch, int epochs);

#endif
