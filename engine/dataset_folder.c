/* Folders of PNG and JPEG images: dir/{train,test}/<class>/<file>. Two
 * passes over the split: the headers (which files are images, colour or
 * gray, how many: the memory bound is checked before the big allocation),
 * then decoding and fitting each image into its slot. Both passes run in
 * parallel over files, each file into its own slot, and report in file
 * order, so the result does not depend on the thread count. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "fileio.h"
#include "image.h"

#define FOLDER_PATH_MAX 4096
#define FOLDER_WHY_MAX 256

static const char *const SPLIT_DIR[2] = {"train", "test"};

/* ---- directory listings ----------------------------------------------------- */

typedef struct name_list {
    char **name;
    int n, cap;
} name_list;

static void name_list_free(name_list *l) {
    for (int i = 0; i < l->n; i++) free(l->name[i]);
    free(l->name);
    memset(l, 0, sizeof *l);
}

static moda_status name_list_add(name_list *l, const char *name) {
    if (l->n == l->cap) {
        if (l->cap > INT_MAX / 2) return MODA_ERR_NOMEM;
        int cap = l->cap ? l->cap * 2 : 64;
        char **grown = realloc(l->name, (size_t)cap * sizeof *grown);
        if (!grown) return MODA_ERR_NOMEM;
        l->name = grown;
        l->cap = cap;
    }
    if (!(l->name[l->n] = strdup(name))) return MODA_ERR_NOMEM;
    l->n++;
    return MODA_OK;
}

static int by_bytes(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The entries of dir that are directories (want_dirs) or not, without
 * those starting with '.', sorted by bytes. */
static moda_status list_dir(const char *dir, bool want_dirs, name_list *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return fileio_fail(err, errlen, MODA_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    moda_status st = MODA_OK;
    struct dirent *e;
    char path[FOLDER_PATH_MAX];
    while (st == MODA_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            st = fileio_fail(err, errlen, MODA_ERR_ARG, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        if (is_dir(path) == want_dirs) st = name_list_add(out, e->d_name);
    }
    closedir(d);
    if (st != MODA_OK) {
        name_list_free(out);
        return st;
    }
    if (out->n) qsort(out->name, (size_t)out->n, sizeof *out->name, by_bytes);
    return MODA_OK;
}

/* The class folders of dir/train and dir/test, which must agree. */
static moda_status list_classes(const char *dir, name_list *classes, char *err, size_t errlen) {
    name_list split[2];
    char path[FOLDER_PATH_MAX];
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, SPLIT_DIR[s]);
        moda_status st = list_dir(path, true, &split[s], err, errlen);
        if (st != MODA_OK) {
            if (s) name_list_free(&split[0]);
            return st;
        }
    }
    moda_status st = MODA_OK;
    if (split[0].n == 0) st = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s/train: no class folders", dir);
    for (int i = 0, j = 0; st == MODA_OK && (i < split[0].n || j < split[1].n); i++, j++) {
        int c = i == split[0].n ? 1 : j == split[1].n ? -1 : strcmp(split[0].name[i], split[1].name[j]);
        if (c)
            st = fileio_fail(err, errlen, MODA_ERR_FORMAT,
                             "%s: train and test must have the same class folders, but '%s' is only in %s", dir,
                             c < 0 ? split[0].name[i] : split[1].name[j], c < 0 ? "train" : "test");
    }
    name_list_free(&split[1]);
    if (st != MODA_OK) name_list_free(&split[0]);
    else *classes = split[0];
    return st;
}

/* ---- files of a split ------------------------------------------------------- */

typedef struct folder_file {
    char *path;
    int label;
    int channels; /* from the header; 0 when it is not a readable image */
    char *why;    /* why the file cannot be used, or NULL */
} folder_file;

typedef struct folder_split {
    folder_file *f;
    int n;
} folder_split;

static void folder_split_free(folder_split *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->f[i].path);
        free(s->f[i].why);
    }
    free(s->f);
    memset(s, 0, sizeof *s);
}

/* Every file of dir/<split>/<class>, by class, then by name. */
static moda_status list_files(const char *dir, dataset_split split, const name_list *classes, folder_split *out,
                              char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    name_list all = {0};
    int *label = NULL;
    moda_status st = MODA_OK;
    char path[FOLDER_PATH_MAX];
    for (int k = 0; st == MODA_OK && k < classes->n; k++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, SPLIT_DIR[split], classes->name[k]);
        name_list files;
        if ((st = list_dir(path, false, &files, err, errlen)) != MODA_OK) break;
        if (files.n == 0 && split == DATASET_TRAIN)
            st = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: no files (every training class needs images)", path);
        int *grown = st == MODA_OK ? realloc(label, ((size_t)all.n + files.n + 1) * sizeof *label) : NULL;
        if (st == MODA_OK && !grown) st = MODA_ERR_NOMEM;
        if (grown) label = grown;
        for (int i = 0; st == MODA_OK && i < files.n; i++) {
            char file[FOLDER_PATH_MAX];
            if (snprintf(file, sizeof file, "%s/%s", path, files.name[i]) >= (int)sizeof file)
                st = fileio_fail(err, errlen, MODA_ERR_ARG, "%s/%s: path too long", path, files.name[i]);
            else if ((st = name_list_add(&all, file)) == MODA_OK)
                label[all.n - 1] = k;
        }
        name_list_free(&files);
    }
    if (st == MODA_OK && !(out->f = calloc((size_t)all.n + 1, sizeof *out->f))) st = MODA_ERR_NOMEM;
    if (st == MODA_OK) {
        for (int i = 0; i < all.n; i++) {
            out->f[i].path = all.name[i];
            out->f[i].label = label[i];
            all.name[i] = NULL;
        }
        out->n = all.n;
    }
    name_list_free(&all);
    free(label);
    return st;
}

/* f->why = "<path>: <reason>". */
static void set_why(folder_file *f, const char *reason) {
    size_t len = strlen(f->path) + strlen(reason) + 3;
    if ((f->why = malloc(len))) snprintf(f->why, len, "%s: %s", f->path, reason);
}

/* Reads one file and decodes its header (img NULL) or all of it. */
static moda_status read_image(folder_file *f, const image_limits *lim, image *img) {
    uint8_t *data = NULL;
    size_t len = 0;
    char why[FOLDER_WHY_MAX] = "";
    moda_status st = fileio_read_all(f->path, DATASET_FOLDER_FILE_MAX, &data, &len, why, sizeof why);
    if (st == MODA_OK) {
        image_info info;
        st = img ? image_decode(data, len, lim, img, why, sizeof why)
                 : image_probe(data, len, lim, &info, why, sizeof why);
        if (st == MODA_OK) f->channels = img ? img->c : info.channels;
    } else {
        /* fileio's message names the path already: keep only the reason. */
        const size_t plen = strlen(f->path);
        if (!strncmp(why, f->path, plen) && !strncmp(why + plen, ": ", 2))
            memmove(why, why + plen + 2, strlen(why + plen + 2) + 1);
    }
    free(data);
    if (st != MODA_OK) {
        f->channels = 0;
        set_why(f, why[0] ? why : moda_status_string(st));
    }
    return st;
}

static void probe_all(folder_split *s, const image_limits *lim) {
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < s->n; i++) read_image(&s->f[i], lim, NULL);
}

/* The first unusable file fails a strict load; otherwise each is reported. */
static moda_status report_unusable(const folder_split *s, const dataset_load_options *o, int *skipped, char *err,
                                   size_t errlen) {
    for (int i = 0; i < s->n; i++) {
        const folder_file *f = &s->f[i];
        if (f->channels) continue;
        const char *why = f->why ? f->why : f->path;
        if (o->strict_images) return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s", why);
        fprintf(o->log, "skipped %s\n", why);
        (*skipped)++;
    }
    return MODA_OK;
}

/* Removes the files that are not usable images, keeping the order. */
static void drop_unusable(folder_split *s) {
    int j = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->f[i].channels) {
            s->f[j++] = s->f[i];
            continue;
        }
        free(s->f[i].path);
        free(s->f[i].why);
    }
    s->n = j;
}

/* ---- the loader ------------------------------------------------------------- */

size_t dataset_folder_max_bytes_default(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return (size_t)4 << 30;
    return (size_t)pages / 2 * (size_t)page;
}

static dataset_load_options resolve_options(const dataset_load_options *opt) {
    dataset_load_options o = opt ? *opt : (dataset_load_options){0};
    if (o.image_size == 0) o.image_size = DATASET_FOLDER_SIZE_DEFAULT;
    if (o.max_bytes == 0) o.max_bytes = dataset_folder_max_bytes_default();
    if (o.limits.max_side == 0 && o.limits.max_pixels == 0) o.limits = image_limits_default();
    if (!o.log) o.log = stderr;
    return o;
}

/* 3 if any readable training image is colour, else 1. */
static moda_status training_channels(const char *dir, const name_list *classes, const folder_split *loaded,
                                     const image_limits *lim, int *channels, char *err, size_t errlen) {
    folder_split train = {0};
    if (!loaded) {
        MODA_TRY(list_files(dir, DATASET_TRAIN, classes, &train, err, errlen));
        probe_all(&train, lim);
        loaded = &train;
    }
    *channels = 1;
    for (int i = 0; i < loaded->n; i++)
        if (loaded->f[i].channels == 3) *channels = 3;
    folder_split_free(&train);
    return MODA_OK;
}

/* Decodes and fits file i into sample i of ds (raw pixels / 255). */
static void decode_all(folder_split *s, const dataset_load_options *o, dataset *ds) {
    const int size = o->image_size;
    const size_t img_floats = (size_t)ds->c * size * size;
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < s->n; i++) {
        folder_file *f = &s->f[i];
        if (!f->channels) continue;
        image src, fit;
        if (read_image(f, &o->limits, &src) != MODA_OK) continue;
        moda_status st = image_fit(&src, ds->c, size, size, &fit);
        image_free(&src);
        if (st != MODA_OK) {
            f->channels = 0;
            set_why(f, moda_status_string(st));
            continue;
        }
        float *dst = ds->images + (size_t)i * img_floats;
        for (size_t j = 0; j < img_floats; j++) dst[j] = (float)fit.pixels[j] / 255.0f;
        ds->labels[i] = f->label;
        image_free(&fit);
    }
}

/* Drops the samples of files that failed to decode, keeping the order. */
static void compact(dataset *ds, const folder_split *s) {
    const size_t img = (size_t)ds->c * ds->h * ds->w;
    int j = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->f[i].channels) continue;
        if (j != i) {
            memmove(ds->images + (size_t)j * img, ds->images + (size_t)i * img, img * sizeof(float));
            ds->labels[j] = ds->labels[i];
        }
        j++;
    }
    ds->n = j;
}

static moda_status load_split(dataset *ds, const char *dir, dataset_split split, const dataset_load_options *o,
                              const name_list *classes, folder_split *files, char *err, size_t errlen) {
    char where[FOLDER_PATH_MAX];
    snprintf(where, sizeof where, "%s/%s", dir, SPLIT_DIR[split]);
    MODA_TRY(list_files(dir, split, classes, files, err, errlen));
    probe_all(files, &o->limits);
    int skipped = 0, channels = o->channels;
    MODA_TRY(report_unusable(files, o, &skipped, err, errlen));
    if (!channels)
        MODA_TRY(training_channels(dir, classes, split == DATASET_TRAIN ? files : NULL, &o->limits, &channels, err,
                                   errlen));
    const int total = files->n;
    drop_unusable(files);
    const int n = files->n;
    if (n == 0) return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: no readable PNG or JPEG images", where);
    const size_t per_image = (size_t)channels * o->image_size * o->image_size * sizeof(float);
    if ((size_t)n > o->max_bytes / per_image)
        return fileio_fail(err, errlen, MODA_ERR_NOMEM,
                           "%s: %d images of %dx%dx%d need %zu bytes as floats, over the bound of %zu bytes; use a "
                           "smaller --input-size or fewer images",
                           where, n, channels, o->image_size, o->image_size, (size_t)n * per_image, o->max_bytes);
    MODA_TRY(dataset_alloc(ds, n, channels, o->image_size, o->image_size, classes->n));
    for (int k = 0; k < classes->n; k++) MODA_TRY(dataset_set_class_name(ds, k, classes->name[k]));
    decode_all(files, o, ds);
    int late = 0; /* headers that read but pixels that did not */
    MODA_TRY(report_unusable(files, o, &late, err, errlen));
    skipped += late;
    compact(ds, files);
    if (ds->n == 0) return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: no readable PNG or JPEG images", where);
    if (skipped)
        fprintf(o->log, "%s: skipped %d of %d files that are not readable PNG or JPEG images\n", where, skipped,
                total);
    snprintf(ds->source, sizeof ds->source, "folder %s %.480s", SPLIT_DIR[split], dir);
    return MODA_OK;
}

moda_status dataset_load_folder(dataset *ds, const char *dir, dataset_split split,
                                const dataset_load_options *opt, char *err, size_t errlen) {
    if (!ds || !dir) return MODA_ERR_NULL;
    memset(ds, 0, sizeof *ds);
    if (split != DATASET_TRAIN && split != DATASET_TEST) return MODA_ERR_ARG;
    const dataset_load_options o = resolve_options(opt);
    if (o.image_size < 1 || o.image_size > 4096 || (o.channels != 0 && o.channels != 1 && o.channels != 3))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: image size %d or channels %d out of range", dir,
                           o.image_size, o.channels);
    if (!is_dir(dir)) return fileio_fail(err, errlen, MODA_ERR_IO, "%s: not a directory", dir);
    name_list classes;
    MODA_TRY(list_classes(dir, &classes, err, errlen));
    folder_split files = {0};
    moda_status st = load_split(ds, dir, split, &o, &classes, &files, err, errlen);
    if (st != MODA_OK) {
        if (err && !err[0]) fileio_errf(err, errlen, "%s: %s", dir, moda_status_string(st));
        dataset_free(ds);
    }
    folder_split_free(&files);
    name_list_free(&classes);
    return st;
}
