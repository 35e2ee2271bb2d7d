/* The calibration layer of module replacement (docs/design.md section 2): a
 * K x K linear map with bias on a model's K logits, trained with
 * cross-entropy while the models that produce the logits stay frozen. It
 * learns how a module from another model, put in place of one logit,
 * compares with the logits it now sits among.
 *
 * Everything runs on the host: the inputs are K numbers per sample,
 * computed once, so an epoch over 60,000 samples is a few milliseconds. */
#ifndef MODA_CALIBRATION_H
#define MODA_CALIBRATION_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

typedef struct calibration {
    int k;
    float *w; /* (K, K) row-major, out x in, owned */
    float *b; /* (K), owned */
} calibration;

/* w ~ N(0, 0.01^2), b = 0, as the design and the reference use. */
moda_status calibration_init(calibration *c, int k, uint64_t seed);
void calibration_free(calibration *c); /* accepts NULL; leaves *c zeroed */

/* z (n, K) = f (n, K) w^T + b. */
void calibration_apply(const calibration *c, const float *f, int n, float *z);

/* Mean cross-entropy of softmax(calibration_apply(f)) against labels y in
 * [0, K); with gw (K x K) and gb (K) non-NULL, also its gradient. */
double calibration_loss(const calibration *c, const float *f, const int32_t *y, int n, float *gw, float *gb);

typedef enum calibration_optimizer {
    CALIBRATION_ADAM, /* beta1 0.9, beta2 0.999, eps 1e-8, constant lr */
    CALIBRATION_SGD,  /* momentum 0.9, Nesterov, lr annealed to 0 by a cosine over the epochs, as the paper trains */
} calibration_optimizer;

typedef struct calibration_options {
    int epochs;    /* passes over the samples (3) */
    int batch;     /* samples per step (128) */
    float lr;      /* step size (0.01) */
    uint64_t seed; /* order of the samples */
    calibration_optimizer optimizer; /* CALIBRATION_ADAM */
    /* Called after each epoch with its mean loss; returning false stops
     * the training with MODA_ERR_CANCELLED. NULL: never stops. */
    bool (*on_epoch)(void *ctx, int epoch, double loss);
    void *ctx;
} calibration_options;

/* "adam" or "sgd"; false for anything else. */
bool calibration_optimizer_parse(const char *text, calibration_optimizer *out);
const char *calibration_optimizer_name(calibration_optimizer o);

calibration_options calibration_options_default(void);

/* The optimiser of o on shuffled minibatches; the order is a pure
 * function of (seed, epoch). *final_loss (may be NULL)
 * gets the last epoch's mean loss over its batches. */
moda_status calibration_train(calibration *c, const float *f, const int32_t *y, int n, const calibration_options *o,
                              double *final_loss);

#endif
