/* Training and evaluation runs behind `moda train` and `moda eval`. */
#ifndef MODA_TRAIN_H
#define MODA_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint.h"
#include "dataset.h"
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

/* Prepares a split as loaded for a model: the first `subset` samples of
 * each class (0: all), padded to input_size and normalised with mi's
 * statistics or, for training data with mi == NULL, its own. Frees ds on
 * failure. */
moda_status train_prepare_split(dataset *ds, int input_size, int subset, const model_info *mi, char *err,
                                size_t errlen);

/* Loads split `split` of kind from dir (NULL: the kind's default) with
 * the loader options lo (lo->image_size is the input size; lo->channels 0
 * takes mi's channels when mi is given), puts its sample count and
 * fingerprint in rec (NULL: not wanted), names its classes from
 * lo->names_path (NULL: the kind's names) and prepares it. */
moda_status train_load_split(dataset *ds, const char *kind, const char *dir, const dataset_load_options *lo,
                             dataset_split split, int subset, const model_info *mi, dataset_record *rec, char *err,
                             size_t errlen);

typedef struct eval_result {
    double loss, acc;
    int *correct, *total; /* (K) per class, owned */
} eval_result;

/* Eval-mode pass over ds in order; g must be planned for batch_size. */
moda_status evaluate(graph *g, const dataset *ds, int batch_size, eval_result *r);
void eval_result_free(eval_result *r);

/* Eval-mode outputs of g for every sample of ds, in order, in batches of
 * at most `batch` (g planned for it): out (n, outputs) on the host and,
 * when capture (backend memory) is set, node `node`'s activations (n, its
 * numel). */
moda_status evaluate_outputs(graph *g, const dataset *ds, int batch, float *out, int node, float *capture);

#endif
