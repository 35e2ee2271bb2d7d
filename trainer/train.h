/* Training and evaluation runs behind `moda train` and `moda eval`. */
#ifndef MODA_TRAIN_H
#define MODA_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint.h"
#include "data_prep.h"
#include "dataset.h"
#include "evaluate.h"
#include "graph.h"
#include "moda_loss.h"
#include "optim.h"

typedef struct train_options {
    const char *arch;     /* vgg16 | resnet18 | mobilenet | lenet5 */
    float width;          /* channel multiplier */
    int input_size;       /* images are zero-padded (folder: fitted) to this (H = W) */
    const char *dataset;  /* fashion-mnist | mnist | idx | cifar10 | cifar100 | folder */
    const char *data_dir; /* NULL: the dataset's default */
    const char *names;    /* class-names file for IDX data, or NULL */
    bool strict_images;   /* folder: an unreadable image file fails the run instead of being skipped */
    int epochs;
    int batch_size;
    float lr, momentum, weight_decay;
    bool nesterov;
    uint64_t seed;
    int subset;           /* samples per class, 0 = all */
    const char *classes;  /* class selection (dataset_select.h): "a,b,..." names or indices, or NULL: all */
    const char *mix_class; /* appended as the last label with only mix_fraction of its training images; or NULL */
    float mix_fraction;   /* NaN: not given (DATASET_MIX_FRACTION_DEFAULT) */
    bool augment;         /* random crop (pad 4) + horizontal flip */
    float alpha, beta, gamma; /* MODA loss weights; all 0 = standard training */
    const char *out_dir;  /* checkpoint.safetensors, metrics.csv, curves.svg */
    const char *device;   /* cpu | cuda | auto (backend_new) */
    backend_options backend; /* how the backend is created; zeroed: the defaults */
    bool resume;          /* continue from out_dir/checkpoint.safetensors */
    int stop_after;       /* stop after this many epochs in this run (0: never) */
    FILE *log;            /* progress and summaries; NULL: silent */
} train_options;

train_options train_options_default(void);
moda_status train_run(const train_options *o, char *err, size_t errlen);

/* One training step exactly as `moda train` runs it, so benchmarks time the
 * same work: train-mode forward of the n images x (C, H, W each) with labels
 * y, softmax cross-entropy (batch mean into *ce), the logits copied into
 * logits (n x K) for accuracy, backward with the MODA hook (with all its
 * weights 0 the terms are only measured), then one SGD step at lr. probs
 * (n x K) is scratch; g must be planned for n and moda initialised on g. */
moda_status train_step(graph *g, sgd *opt, moda_loss *moda, const float *x, const int32_t *y, int n, float lr,
                       float *probs, float *logits, float *ce);

#endif
