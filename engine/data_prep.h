/* A split of a dataset made ready for a model: the per-class subset,
 * zero padding to the model's input size, and normalisation with the
 * model's statistics. Shared by training, evaluation and replacement. */
#ifndef MODA_DATA_PREP_H
#define MODA_DATA_PREP_H

#include <stddef.h>

#include "dataset.h"
#include "dataset_record.h"
#include "model_info.h"
#include "status.h"

/* Prepares a split as loaded for a model: the first `subset` samples of
 * each class (0: all), padded to input_size and normalised with mi's
 * statistics or, for training data with mi == NULL, its own. Frees ds on
 * failure. */
moda_status data_prepare_split(dataset *ds, int input_size, int subset, const model_info *mi, char *err,
                               size_t errlen);

/* Loads split `split` of kind from dir (NULL: the kind's default) with
 * the loader options lo (lo->image_size is the input size; lo->channels 0
 * takes mi's channels when mi is given), puts its sample count and
 * fingerprint in rec (NULL: not wanted), names its classes from
 * lo->names_path (NULL: the kind's names) and prepares it. */
moda_status data_load_split(dataset *ds, const char *kind, const char *dir, const dataset_load_options *lo,
                            dataset_split split, int subset, const model_info *mi, dataset_record *rec, char *err,
                            size_t errlen);

/* The first half of data_load_split, for a caller that acts on the split
 * before it is prepared (a class selection): loaded, fingerprinted into
 * rec and named, not prepared. */
moda_status data_load_raw(dataset *ds, const char *kind, const char *dir, const dataset_load_options *lo,
                          dataset_split split, const model_info *mi, dataset_record *rec, char *err, size_t errlen);

#endif
