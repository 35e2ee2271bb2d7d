/* What a model needs beyond its weights to be rebuilt and fed: its
 * architecture, its input preprocessing and its class names; and the
 * record of the data it was trained on. Checkpoints and the registry both
 * store it. */
#ifndef MODA_MODEL_INFO_H
#define MODA_MODEL_INFO_H

#include "dataset.h"
#include "dataset_record.h"
#include "dataset_select.h"
#include "models.h"
#include "status.h"

typedef struct model_info {
    model_config model;
    char dataset[64];  /* the dataset's kind, e.g. "fashion-mnist" */
    dataset_record data; /* where it was and what it held (data.present: recorded) */
    dataset_selection selection; /* the classes of it trained on (selection.present: a subset) */
    int pad;           /* zero border added to each side of the raw images */
    int channels;      /* = model.in_channels */
    float mean[DATASET_MAX_CHANNELS], std[DATASET_MAX_CHANNELS];
    char **class_names; /* (model.num_classes), owned */
} model_info;

void model_info_free(model_info *mi); /* accepts NULL */
/* Copy mean/std/pad/class names from a prepared (normalised) dataset. */
moda_status model_info_from_dataset(model_info *mi, const dataset *ds);

/* Whether b reads its input exactly as a does: size, channels, padding
 * and normalisation. If not, why says what differs. */
bool model_info_same_input(const model_info *a, const model_info *b, char *why, size_t len);

/* The class that item names among names[0..k): an exact name, else the
 * one name equal to it ignoring case, else a decimal index. -1 with the
 * reason in why (listing the names, when few) otherwise. */
int class_resolve(const char *item, char *const *names, int k, char *why, size_t len);

#endif
