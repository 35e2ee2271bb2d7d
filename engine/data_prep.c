#include "data_prep.h"

#include "fileio.h"

moda_status data_load_raw(dataset *ds, const char *kind, const char *dir, const dataset_load_options *lo,
                          dataset_split split, const model_info *mi, dataset_record *rec, char *err, size_t errlen) {
    if (!ds || !lo) return MODA_ERR_NULL;
    dataset_load_options o = *lo;
    o.names_path = NULL; /* applied after the fingerprint */
    if (mi && !o.channels) o.channels = mi->channels; /* the model's, not a guess from the data */
    MODA_TRY(dataset_load(ds, kind, dir, split, &o, err, errlen));
    /* Fingerprinted before the names file: names label the data, they do
     * not change it. */
    moda_status s = rec ? dataset_record_split(rec, split, ds) : MODA_OK;
    if (s == MODA_OK && lo->names_path) s = dataset_apply_names_file(ds, lo->names_path, err, errlen);
    if (s != MODA_OK) dataset_free(ds);
    return s;
}

moda_status data_load_split(dataset *ds, const char *kind, const char *dir, const dataset_load_options *lo,
                            dataset_split split, int subset, const model_info *mi, dataset_record *rec, char *err,
                            size_t errlen) {
    MODA_TRY(data_load_raw(ds, kind, dir, lo, split, mi, rec, err, errlen));
    return data_prepare_split(ds, lo->image_size, subset, mi, err, errlen);
}

moda_status data_prepare_split(dataset *ds, int input_size, int subset, const model_info *mi, char *err,
                                size_t errlen) {
    moda_status s = MODA_OK;
    if (subset > 0) s = dataset_subset_per_class(ds, subset);
    if (s == MODA_OK && (ds->h != ds->w || ds->h > input_size || (input_size - ds->h) % 2)) {
        s = fileio_fail(err, errlen, MODA_ERR_SHAPE, "%s: %dx%d images do not pad evenly to %dx%d", ds->source, ds->h,
                   ds->w, input_size, input_size);
    }
    if (s == MODA_OK && ds->h < input_size) s = dataset_pad(ds, (input_size - ds->h) / 2);
    if (s == MODA_OK) {
        if (mi) {
            if (mi->channels != ds->c)
                s = fileio_fail(err, errlen, MODA_ERR_SHAPE, "%s: %d channels, the model expects %d", ds->source, ds->c,
                           mi->channels);
            else
                s = dataset_normalize(ds, mi->mean, mi->std);
        } else {
            float mean[DATASET_MAX_CHANNELS], std[DATASET_MAX_CHANNELS];
            s = dataset_compute_stats(ds, mean, std);
            if (s == MODA_OK) s = dataset_normalize(ds, mean, std);
        }
    }
    if (s != MODA_OK) {
        if (err && !err[0]) fileio_fail(err, errlen, s, "%s: %s", ds->source, moda_status_string(s));
        dataset_free(ds);
    }
    return s;
}
