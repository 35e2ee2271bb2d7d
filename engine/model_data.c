#include "model_data.h"

#include <string.h>

#include "data_prep.h"
#include "fileio.h"

/* The kind must be the model's; the location as the header says. */
static moda_status resolve(const model_data_options *o, const char *name, const model_info *mi, const char **dir,
                           char *where, size_t wlen, char *err, size_t errlen) {
    if (!mi->dataset[0])
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s does not say which dataset it was trained on", name);
    if (o->kind && strcmp(o->kind, mi->dataset) != 0)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "--dataset %s differs from the dataset %s was trained on, %s",
                           o->kind, name, mi->dataset);
    *dir = o->data_dir ? o->data_dir : mi->data.location[0] ? mi->data.location : NULL;
    if (o->data_dir) snprintf(where, wlen, "--data-dir %s", o->data_dir);
    else if (*dir) snprintf(where, wlen, "the recorded location %s", *dir);
    else snprintf(where, wlen, "the default location of %s", mi->dataset);
    return MODA_OK;
}

moda_status model_data_verify(const dataset *raw, const char *where, const model_data_options *o, const char *name,
                              const model_info *mi, dataset_split split, char *err, size_t errlen) {
    if (!mi->data.present) {
        if (o->log)
            fprintf(o->log,
                    "warning: %s has no record of its training data (made by an older moda): the %s data read from "
                    "%s cannot be checked\n",
                    name, dataset_split_name(split), where);
        return MODA_OK;
    }
    dataset_split_record read = {.samples = raw->n};
    moda_status s = dataset_fingerprint(raw, read.sha256);
    if (s != MODA_OK) return fileio_fail(err, errlen, s, "%s: cannot fingerprint the data read", name);
    return dataset_record_check(&mi->data, mi->dataset, name, split, &read, where, err, errlen);
}

moda_status model_data_read(dataset *raw, const model_data_options *o, const char *name, const model_info *mi,
                            dataset_split split, char *where, size_t wlen, char *err, size_t errlen) {
    memset(raw, 0, sizeof *raw);
    const char *dir = NULL;
    MODA_TRY(resolve(o, name, mi, &dir, where, wlen, err, errlen));
    char why[1024] = "";
    /* Read as it was for training: folder images fitted to the model's input. */
    const dataset_load_options lo = {.image_size = mi->model.input_size, .channels = mi->channels};
    moda_status s = dataset_load(raw, mi->dataset, dir, split, &lo, why, sizeof why);
    if (s == MODA_ERR_NOMEM) return fileio_fail(err, errlen, s, "%s", why);
    if (s != MODA_OK)
        return fileio_fail(err, errlen, MODA_ERR_NOT_FOUND,
                           "%s: its %s data (%s) cannot be read from %s: %s; %s",
                           name, dataset_split_name(split), mi->dataset, where, why,
                           o->hint ? o->hint : "give --data-dir with the data it was trained on");
    s = model_data_verify(raw, where, o, name, mi, split, err, errlen);
    if (s != MODA_OK) dataset_free(raw);
    return s;
}

moda_status model_data_load(dataset *ds, const model_data_options *o, const char *name, const model_info *mi,
                            dataset_split split, int subset, char *err, size_t errlen) {
    char where[DATASET_LOCATION_LEN + 64];
    MODA_TRY(model_data_read(ds, o, name, mi, split, where, sizeof where, err, errlen));
    moda_status s = dataset_select(ds, &mi->selection, split, err, errlen);
    if (s != MODA_OK) {
        dataset_free(ds);
        return s;
    }
    return data_prepare_split(ds, mi->model.input_size, subset, mi, err, errlen);
}
