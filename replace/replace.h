/* Module replacement (docs/design.md section 2). Class t of a weak model W
 * is patched with the module of a strong model S for the class of the
 * same name: W's logit t is replaced by the output of S's single-class
 * module at tau, and a K x K calibration layer is trained on W's training
 * data with both models frozen. The run measures, on W's test data, W
 * itself, W patched, W calibrated alone (the control: what calibration
 * gives without the module), W patched and calibrated, and CNNSplitter's
 * untrained strategy (the baseline, below).
 *
 * The run is a pure computation: it reads the models and the data and
 * writes nothing. replace_save() stores its result as a patched model. */
#ifndef MODA_REPLACE_H
#define MODA_REPLACE_H

#include <stdbool.h>
#include <stddef.h>

#include "calibration.h"
#include "model_data.h"
#include "registry.h"
#include "status.h"

/* The rows of the result: test accuracy of each way of using the models.
 * REPLACE_BASELINE is CNNSplitter's strategy: W's softmax with t's
 * probability replaced by the module's logit, min-max normalised with the
 * module's range over the training data; no training. */
enum {
    REPLACE_WEAK = PATCH_ACC_WEAK,
    REPLACE_PATCHED = PATCH_ACC_PATCHED,
    REPLACE_WEAK_CALIBRATED = PATCH_ACC_WEAK_CALIBRATED,
    REPLACE_PATCHED_CALIBRATED = PATCH_ACC_PATCHED_CALIBRATED,
    REPLACE_BASELINE = PATCH_ACC_BASELINE,
    REPLACE_ROWS = PATCH_ACC_ROWS /* the rows a patched model's manifest records */
};

/* Where a run stands, for progress reports. */
typedef enum replace_phase {
    REPLACE_PHASE_LOAD,      /* reading and checking the data */
    REPLACE_PHASE_FORWARD,   /* the models over the data: done/total samples */
    REPLACE_PHASE_CALIBRATE, /* training the calibration layers: epoch, loss */
} replace_phase;

typedef struct replace_progress {
    replace_phase phase;
    const char *split;  /* "training" or "test" while forward */
    long done, total;   /* samples through both models, of both splits, so far and in all */
    int epoch, epochs;  /* calibration: the epoch just finished (1-based), of how many (two layers: 2 x epochs) */
    double loss;        /* its mean training loss */
    double images_per_s; /* forward throughput so far */
} replace_progress;

/* Called between batches and after each calibration epoch. Returning
 * false cancels the run (MODA_ERR_CANCELLED). */
typedef bool (*replace_progress_fn)(void *ctx, const replace_progress *p);

typedef struct replace_request {
    const registry_model *weak, *strong; /* loaded (weights and rates) */
    const char *cls;         /* W's class: a name or an index */
    float tau;               /* the module's threshold */
    calibration_options calib; /* its on_epoch is the run's own */
    model_data_options data; /* where W's data is read (checked against W's and S's records) */
    moda_backend *be;        /* runs the module and W's handle */
    int batch;               /* samples per forward pass; 0: 256 */
    replace_progress_fn progress; /* NULL: none */
    void *ctx;
} replace_request;

typedef struct replace_result {
    int cls, strong_cls, k, train_n, test_n;
    int test_class_n;             /* test samples of the class */
    char class_name[128];
    double module_params;         /* the module's share of the strong model's parameters */
    double acc[REPLACE_ROWS][2];  /* % of the test set, and of its samples of the class */
    double loss[2];               /* final training loss: weak calibrated, patched calibrated */
    calibration layer;            /* the patched model's calibration layer, owned */
} replace_result;

/* The run. An unknown class, a class S lacks, models of different
 * datasets or inputs are MODA_ERR_ARG or MODA_ERR_NOT_FOUND with err
 * saying which; missing data MODA_ERR_NOT_FOUND. */
moda_status replace_run(const replace_request *rq, replace_result *res, char *err, size_t errlen);
void replace_result_free(replace_result *r); /* accepts NULL */

/* Store the run's result as patched model `name` in root, the registry
 * holding both of rq's models (registry_write_patched). */
moda_status replace_save(const char *root, const char *name, const replace_request *rq, const replace_result *res,
                         char *err, size_t errlen);

/* Whether S reads its input exactly as W does (size, channels, padding,
 * normalisation), so that one input serves both, as a patched model
 * needs; if not, why says what differs. */
bool replace_same_input(const registry_model *w, const registry_model *s, char *why, size_t whylen);

#endif
