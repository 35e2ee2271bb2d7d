#include "dataset_select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "model_info.h"
#include "rng.h"

/* The stream of the mixed class's draw, apart from every other use of a seed. */
#define MIX_STREAM 0x6d69786564ULL
/* A recorded class index beyond this is not one (no loader gives as many classes). */
#define CLASS_INDEX_MAX (1 << 20)

int dataset_selection_classes(const dataset_selection *sel) {
    return sel && sel->present ? sel->n + (sel->mix >= 0) : 0;
}

static bool listed(const dataset_selection *sel, int c) {
    for (int i = 0; i < sel->n; i++)
        if (sel->classes[i] == c) return true;
    return false;
}

moda_status dataset_selection_resolve(dataset_selection *sel, const char *classes_csv, const char *mix,
                                      float fraction, bool fraction_given, uint64_t seed, char *const *names, int k,
                                      char *err, size_t errlen) {
    if (!sel || !names) return MODA_ERR_NULL;
    memset(sel, 0, sizeof(*sel));
    sel->mix = -1;
    if (!classes_csv) {
        if (mix || fraction_given)
            return fileio_fail(err, errlen, MODA_ERR_ARG, "--mix-class and --mix-fraction need --classes");
        return MODA_OK;
    }
    if (fraction_given && !mix) return fileio_fail(err, errlen, MODA_ERR_ARG, "--mix-fraction needs --mix-class");
    if (!(fraction > 0 && fraction <= 1))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "--mix-fraction must be in (0, 1], not %g", fraction);
    char why[512] = "";
    const char *p = classes_csv;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[256];
        if (len == 0 || len >= sizeof item)
            return fileio_fail(err, errlen, MODA_ERR_ARG, "--classes \"%s\": %s", classes_csv,
                               len ? "an item is too long" : "an empty item");
        memcpy(item, p, len);
        item[len] = '\0';
        int c = class_resolve(item, names, k, why, sizeof why);
        if (c < 0) return fileio_fail(err, errlen, MODA_ERR_ARG, "--classes: %s", why);
        if (listed(sel, c))
            return fileio_fail(err, errlen, MODA_ERR_ARG, "--classes lists class %d \"%s\" twice", c, names[c]);
        if (sel->n == DATASET_SELECTION_MAX)
            return fileio_fail(err, errlen, MODA_ERR_ARG, "--classes lists more than %d classes", DATASET_SELECTION_MAX);
        sel->classes[sel->n++] = c;
        if (!end) break;
        p = end + 1;
    }
    if (mix) {
        int c = class_resolve(mix, names, k, why, sizeof why);
        if (c < 0) return fileio_fail(err, errlen, MODA_ERR_ARG, "--mix-class: %s", why);
        if (listed(sel, c))
            return fileio_fail(err, errlen, MODA_ERR_ARG,
                               "--mix-class %d \"%s\" is also in --classes: a class is either listed or mixed", c,
                               names[c]);
        sel->mix = c;
    }
    sel->mix_fraction = mix ? fraction : 1.0f;
    sel->seed = seed;
    sel->present = true;
    return MODA_OK;
}

/* Marks which of the mixed class's m samples (in dataset order) are kept:
 * round(fraction * m), at least one, drawn without replacement. */
static moda_status choose_mixed(const dataset_selection *sel, int m, bool *keep) {
    int want = (int)lround((double)sel->mix_fraction * m);
    if (want < 1) want = 1;
    if (want >= m) {
        for (int i = 0; i < m; i++) keep[i] = true;
        return MODA_OK;
    }
    int32_t *order = malloc((size_t)m * sizeof(int32_t));
    if (!order) return MODA_ERR_NOMEM;
    for (int i = 0; i < m; i++) order[i] = i;
    rng r;
    rng_seed(&r, sel->seed, MIX_STREAM + (uint64_t)sel->mix);
    rng_shuffle_i32(&r, order, (uint32_t)m);
    for (int i = 0; i < want; i++) keep[order[i]] = true;
    free(order);
    return MODA_OK;
}

/* label[c]: the new label of dataset class c, -1 if not selected. */
static moda_status selection_labels(const dataset_selection *sel, int k, int *label, char *err, size_t errlen) {
    for (int c = 0; c < k; c++) label[c] = -1;
    for (int i = 0; i <= sel->n; i++) {
        int c = i < sel->n ? sel->classes[i] : sel->mix;
        if (i == sel->n && c < 0) break;
        if (c < 0 || c >= k)
            return fileio_fail(err, errlen, MODA_ERR_FORMAT,
                               "the class selection names class %d, but the data has %d classes", c, k);
        label[c] = i;
    }
    return MODA_OK;
}

moda_status dataset_select(dataset *ds, const dataset_selection *sel, dataset_split split, char *err, size_t errlen) {
    if (!ds || !sel) return MODA_ERR_NULL;
    if (!sel->present) return MODA_OK;
    const int k = ds->num_classes, kk = dataset_selection_classes(sel);
    int *label = malloc((size_t)k * sizeof(int));
    bool *keep = calloc((size_t)ds->n + 1, sizeof(bool));
    moda_status s = label && keep ? selection_labels(sel, k, label, err, errlen) : MODA_ERR_NOMEM;
    int m = 0; /* the mixed class's samples */
    for (int i = 0; s == MODA_OK && i < ds->n; i++) m += sel->mix >= 0 && ds->labels[i] == sel->mix;
    bool *mixed_keep = s == MODA_OK && m ? calloc((size_t)m, sizeof(bool)) : NULL;
    if (s == MODA_OK && m && !mixed_keep) s = MODA_ERR_NOMEM;
    if (s == MODA_OK && m) {
        if (split == DATASET_TRAIN) s = choose_mixed(sel, m, mixed_keep);
        else
            for (int i = 0; i < m; i++) mixed_keep[i] = true;
    }
    int kept = 0;
    for (int i = 0, j = 0; s == MODA_OK && i < ds->n; i++) {
        int y = ds->labels[i];
        if (y < 0 || y >= k || label[y] < 0) continue;
        keep[i] = y == sel->mix ? mixed_keep[j++] : true;
        kept += keep[i];
    }
    dataset out = {0};
    if (s == MODA_OK) s = dataset_alloc(&out, kept, ds->c, ds->h, ds->w, kk);
    const size_t per = (size_t)ds->c * ds->h * ds->w;
    for (int i = 0, j = 0; s == MODA_OK && i < ds->n; i++) {
        if (!keep[i]) continue;
        memcpy(out.images + (size_t)j * per, ds->images + (size_t)i * per, per * sizeof(float));
        out.labels[j++] = label[ds->labels[i]];
    }
    for (int i = 0; s == MODA_OK && i < kk; i++) {
        int c = i < sel->n ? sel->classes[i] : sel->mix;
        s = dataset_set_class_name(&out, i, ds->class_names[c]);
    }
    if (s == MODA_OK) {
        out.pad = ds->pad;
        out.normalized = ds->normalized;
        memcpy(out.mean, ds->mean, sizeof out.mean);
        memcpy(out.std, ds->std, sizeof out.std);
        snprintf(out.source, sizeof out.source, "%s", ds->source);
        dataset_free(ds);
        *ds = out;
    } else {
        dataset_free(&out);
        if (err && !err[0]) fileio_fail(err, errlen, s, "selecting classes: %s", moda_status_string(s));
    }
    free(label);
    free(keep);
    free(mixed_keep);
    return s;
}

json_t *dataset_selection_json(const dataset_selection *sel) {
    json_t *classes = json_array();
    for (int i = 0; classes && i < sel->n; i++)
        if (json_array_append_new(classes, json_integer(sel->classes[i])) != 0) {
            json_decref(classes);
            return NULL;
        }
    return classes ? json_pack("{so,si,sf,sI}", "classes", classes, "mix_class", sel->mix, "mix_fraction",
                               (double)sel->mix_fraction, "seed", (json_int_t)sel->seed)
                   : NULL;
}

bool dataset_selection_parse(json_t *j, dataset_selection *sel, char *why, size_t whylen) {
    memset(sel, 0, sizeof(*sel));
    json_t *classes = json_object_get(j, "classes"), *mix = json_object_get(j, "mix_class"),
           *fraction = json_object_get(j, "mix_fraction"), *seed = json_object_get(j, "seed");
    size_t n = json_array_size(classes);
    if (!json_is_object(j) || !json_is_array(classes) || n == 0 || n > DATASET_SELECTION_MAX ||
        !json_is_integer(mix) || !json_is_number(fraction) || !json_is_integer(seed)) {
        snprintf(why, whylen, "needs \"classes\" (1 to %d indices), \"mix_class\", \"mix_fraction\" and \"seed\"",
                 DATASET_SELECTION_MAX);
        return false;
    }
    sel->n = (int)n;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(classes, i);
        if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) >= CLASS_INDEX_MAX) {
            snprintf(why, whylen, "\"classes\"[%zu] is not a class index", i);
            return false;
        }
        sel->classes[i] = (int)json_integer_value(c);
        for (size_t q = 0; q < i; q++)
            if (sel->classes[q] == sel->classes[i]) {
                snprintf(why, whylen, "\"classes\" lists %d twice", sel->classes[i]);
                return false;
            }
    }
    json_int_t m = json_integer_value(mix);
    double f = json_number_value(fraction);
    if (m < -1 || m >= CLASS_INDEX_MAX || (m >= 0 && listed(sel, (int)m))) {
        snprintf(why, whylen, "\"mix_class\" %lld is not an unlisted class index or -1", (long long)m);
        return false;
    }
    if (!(f > 0 && f <= 1)) {
        snprintf(why, whylen, "\"mix_fraction\" %g is outside (0, 1]", f);
        return false;
    }
    sel->mix = (int)m;
    sel->mix_fraction = (float)f;
    sel->seed = (uint64_t)json_integer_value(seed);
    sel->present = true;
    return true;
}
