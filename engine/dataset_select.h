/* A class selection: a model trained on some of a dataset's classes.
 *
 * The listed classes are kept and relabelled 0.. in the order given. A
 * "mixed" class may be appended as the last label, of which only a
 * fraction of the training images is kept (all of its test images are):
 * the replacement experiment's weak models, which see little of the class
 * a stronger model's module later takes over.
 *
 * Which training images of the mixed class are kept is a pure function of
 * (seed, the class's index, the class's samples in dataset order), so
 * every later read of the model's data (eval, decompose, compose --save,
 * eval-reuse, replace) re-derives the same subset. A model records its
 * selection with its data (model_info.selection); none means the whole
 * dataset. */
#ifndef MODA_DATASET_SELECT_H
#define MODA_DATASET_SELECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "status.h"

#define DATASET_SELECTION_MAX 1024 /* classes a selection may list */

typedef struct dataset_selection {
    bool present;      /* false: the whole dataset, labels as they are */
    int n;             /* listed classes */
    int classes[DATASET_SELECTION_MAX]; /* their indices in the dataset, in label order */
    int mix;           /* the mixed class's index in the dataset, labelled n; -1: none */
    float mix_fraction; /* (0, 1]: the share of its training images kept */
    uint64_t seed;     /* chooses them */
} dataset_selection;

#define DATASET_MIX_FRACTION_DEFAULT 0.1f

/* Resolves the command line's form against the dataset's class names
 * (K of them): classes_csv "a,b,c" (names or indices, class_resolve's
 * rules), mix (a name or index, or NULL), the fraction and the seed.
 * Errors (MODA_ERR_ARG, with the reason): an empty list or item, an
 * unknown class, a class given twice, the mixed class also listed, a
 * fraction outside (0, 1], a mixed class or fraction without a list. */
moda_status dataset_selection_resolve(dataset_selection *sel, const char *classes_csv, const char *mix,
                                      float fraction, bool fraction_given, uint64_t seed, char *const *names, int k,
                                      char *err, size_t errlen);

/* Classes of the selected data: n, plus one for the mixed class. */
int dataset_selection_classes(const dataset_selection *sel);

/* Applies sel to a split as loaded (labels and names of the whole
 * dataset): keeps the selected classes' samples, in dataset order,
 * relabelled, with the selected names; of the mixed class, in the
 * training split, only its chosen fraction. No selection: unchanged. A
 * class index beyond the split's classes is MODA_ERR_FORMAT. ds is left
 * as it was on failure. */
moda_status dataset_select(dataset *ds, const dataset_selection *sel, dataset_split split, char *err, size_t errlen);

/* {"classes": [i...], "mix_class": i, "mix_fraction": f, "seed": s}
 * ("mix_class" -1: none); NULL when out of memory. */
json_t *dataset_selection_json(const dataset_selection *sel);
/* The inverse; false with the reason in why on a malformed object. Sets
 * sel->present on success. */
bool dataset_selection_parse(json_t *j, dataset_selection *sel, char *why, size_t whylen);

#endif
