/* The data of an existing model, for every command that reads data for
 * one (eval, decompose, eval-reuse, replace, compose --save): which data
 * to read, and the proof that it is the data the model was trained on.
 *
 * The kind is the model's (a --dataset that differs is an error naming
 * both). The location is --data-dir when given, else the recorded one,
 * else the kind's default; nothing else is ever tried. The split read is
 * fingerprinted (dataset_fingerprint) and must match the model's record;
 * a model made before records existed is read with a warning that the
 * data cannot be checked. */
#ifndef MODA_MODEL_DATA_H
#define MODA_MODEL_DATA_H

#include <stdio.h>

#include "dataset.h"
#include "model_info.h"

typedef struct model_data_options {
    const char *kind;     /* --dataset, or NULL */
    const char *data_dir; /* --data-dir, or NULL */
    FILE *log;            /* where warnings go; NULL: nowhere */
    const char *hint;     /* how to give the data, for messages; NULL: "give --data-dir ..." */
} model_data_options;

/* Split `split` of model `name`'s data as dataset_load() gives it, checked
 * against mi's record. where (wlen) receives a description of the
 * location read, for messages. Data not found: MODA_ERR_NOT_FOUND and a
 * message that ends with the hint. */
moda_status model_data_read(dataset *raw, const model_data_options *o, const char *name, const model_info *mi,
                            dataset_split split, char *where, size_t wlen, char *err, size_t errlen);

/* Checks another model's record against a split read by model_data_read
 * (the same data serving two models). */
moda_status model_data_verify(const dataset *raw, const char *where, const model_data_options *o, const char *name,
                              const model_info *mi, dataset_split split, char *err, size_t errlen);

/* model_data_read, then the model's class selection (dataset_select),
 * then data_prepare_split: ready for the model. */
moda_status model_data_load(dataset *ds, const model_data_options *o, const char *name, const model_info *mi,
                            dataset_split split, int subset, char *err, size_t errlen);

#endif
