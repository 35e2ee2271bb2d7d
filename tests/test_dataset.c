/* Dataset layer: IDX and CIFAR readers on small generated files, error
 * messages, preprocessing, subsets, the batch iterator and augmentation. */
#include <dirent.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_util.h"

#include "dataset.h"

/* ---- Temp files ------------------------------------------------------- */

static char tmp_root[256];

/* A fresh empty directory under the suite's temp root. */
static void make_dir(char *out, size_t outlen, const char *name) {
    snprintf(out, outlen, "%s/%s", tmp_root, name);
    tu_rm_rf(out);
    assert_int_equal(mkdir(out, 0700), 0);
}

static void write_bytes(const char *path, const void *data, size_t len, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (len) assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (len) assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text), 0); }

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX file: magic, dims, then `len` payload bytes (which may disagree
 * with the dims, to make broken files). */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndim,
                      const unsigned char *payload, size_t len) {
    size_t hdr = 4 + 4 * (size_t)ndim;
    unsigned char *buf = malloc(hdr + len + 1);
    assert_non_null(buf);
    put_be32(buf, magic);
    for (int d = 0; d < ndim; d++) put_be32(buf + 4 + 4 * d, dims[d]);
    if (len) memcpy(buf + hdr, payload, len);
    write_bytes(path, buf, hdr + len, gz);
    free(buf);
}

static unsigned char pixel_at(int i, int j) { return (unsigned char)((i * 37 + j * 11 + 5) & 0xff); }

/* n images of h x w with pixel_at() values and labels[i]. */
static void write_idx_pair(const char *dir, const char *prefix, int gz, int n, int h, int w, const int *labels) {
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    unsigned char *pix = malloc((size_t)n * h * w), *lab = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < h * w; j++) pix[(size_t)i * h * w + j] = pixel_at(i, j);
        lab[i] = (unsigned char)labels[i];
    }
    uint32_t di[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w}, dl[1] = {(uint32_t)n};
    write_idx(ip, gz, 0x803, di, 3, pix, (size_t)n * h * w);
    write_idx(lp, gz, 0x801, dl, 1, lab, (size_t)n);
    free(pix);
    free(lab);
}

static int setup_suite(void **state) {
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/moda_dataset_XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown_suite(void **state) {
    (void)state;
    tu_rm_rf(tmp_root);
    return 0;
}

#define assert_err_mentions(err, needle)                                                          \
    do {                                                                                          \
        if (!strstr((err), (needle))) fail_msg("message '%s' does not mention '%s'", (err), (needle)); \
    } while (0)

/* ---- IDX -------------------------------------------------------------- */

static void check_idx_pixels(const dataset *ds, int n, int h, int w) {
    assert_int_equal(ds->n, n);
    assert_int_equal(ds->c, 1);
    assert_int_equal(ds->h, h);
    assert_int_equal(ds->w, w);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < h * w; j++)
            assert_true(ds->images[(size_t)i * h * w + j] == (float)pixel_at(i, j) / 255.0f);
}

static void test_idx_roundtrip(void **state) {
    (void)state;
    char dir[512], err[512] = "";
    make_dir(dir, sizeof dir, "idx_ok");
    const int train_labels[7] = {3, 0, 9, 1, 1, 4, 2};
    const int test_labels[3] = {5, 8, 7};
    write_idx_pair(dir, "train", 1, 7, 3, 5, train_labels); /* gzip, non-square */
    write_idx_pair(dir, "t10k", 0, 3, 3, 5, test_labels);   /* uncompressed */

    dataset ds;
    assert_int_equal(dataset_load_idx(&ds, dir, DATASET_TRAIN, NULL, err, sizeof err), MODA_OK);
    check_idx_pixels(&ds, 7, 3, 5);
    for (int i = 0; i < 7; i++) assert_int_equal(ds.labels[i], train_labels[i]);
    /* Without a names file the classes are the labels' digits, K = max + 1. */
    assert_int_equal(ds.num_classes, 10);
    assert_string_equal(ds.class_names[0], "0");
    assert_string_equal(ds.class_names[9], "9");
    assert_false(ds.normalized);
    assert_non_null(strstr(ds.source, "train-images-idx3-ubyte.gz"));
    dataset_free(&ds);
    assert_null(ds.images);

    assert_int_equal(dataset_load(&ds, "idx", dir, DATASET_TEST, NULL, err, sizeof err), MODA_OK);
    check_idx_pixels(&ds, 3, 3, 5);
    for (int i = 0; i < 3; i++) assert_int_equal(ds.labels[i], test_labels[i]);
    assert_int_equal(ds.num_classes, 9);
    assert_string_equal(ds.class_names[8], "8");
    dataset_free(&ds);

    /* "mnist" names the classes by digit; "fashion-mnist" by its own names. */
    assert_int_equal(dataset_load(&ds, "mnist", dir, DATASET_TEST, NULL, err, sizeof err), MODA_OK);
    assert_string_equal(ds.class_names[7], "7");
    dataset_free(&ds);
    assert_int_equal(dataset_load(&ds, "fashion-mnist", dir, DATASET_TRAIN, NULL, err, sizeof err), MODA_OK);
    assert_string_equal(ds.class_names[0], "T-shirt/top");
    assert_string_equal(ds.class_names[9], "Ankle boot");
    dataset_free(&ds);

    /* IDX data has no default place: never Fashion-MNIST's. */
    assert_int_equal(dataset_load(&ds, "idx", NULL, DATASET_TEST, NULL, err, sizeof err), MODA_ERR_ARG);
    assert_err_mentions(err, "a data directory is required");

    /* A label past 9 widens K. */
    const int wide[2] = {0, 12};
    write_idx_pair(dir, "t10k", 0, 2, 2, 2, wide);
    assert_int_equal(dataset_load_idx(&ds, dir, DATASET_TEST, NULL, err, sizeof err), MODA_OK);
    assert_int_equal(ds.num_classes, 13);
    assert_string_equal(ds.class_names[12], "12");
    dataset_free(&ds);
}

static void test_idx_names_file(void **state) {
    (void)state;
    char dir[512], names[600], err[512] = "";
    make_dir(dir, sizeof dir, "idx_names");
    snprintf(names, sizeof names, "%s/names.txt", dir);
    write_text(names, "cat\r\n  dog \n\nbird\n\n");
    const int labels[4] = {2, 0, 1, 2};
    write_idx_pair(dir, "train", 1, 4, 2, 2, labels);
    dataset ds;
    assert_int_equal(dataset_load_idx(&ds, dir, DATASET_TRAIN, names, err, sizeof err), MODA_OK);
    assert_int_equal(ds.num_classes, 3);
    assert_string_equal(ds.class_names[0], "cat");
    assert_string_equal(ds.class_names[1], "dog");
    assert_string_equal(ds.class_names[2], "bird");
    dataset_free(&ds);

    /* Labels 0..3 are four classes: three names are too few, and so would
     * five be. */
    const int bad[4] = {2, 0, 3, 1};
    write_idx_pair(dir, "train", 1, 4, 2, 2, bad);
    assert_int_equal(dataset_load_idx(&ds, dir, DATASET_TRAIN, names, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "names.txt: 3 class names, expected 4");
    assert_null(ds.images);
    write_text(names, "a\nb\nc\nd\ne\n");
    assert_int_equal(dataset_load(&ds, "idx", dir, DATASET_TRAIN, &(dataset_load_options){.names_path = names}, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "5 class names, expected 4");
    assert_null(ds.images);

    /* Missing and empty names files. */
    char missing[640];
    snprintf(missing, sizeof missing, "%s/nope.txt", dir);
    assert_int_not_equal(dataset_load_idx(&ds, dir, DATASET_TRAIN, missing, err, sizeof err), MODA_OK);
    assert_err_mentions(err, "nope.txt");
    write_text(names, "\n\n");
    assert_int_equal(dataset_load_idx(&ds, dir, DATASET_TRAIN, names, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "names.txt");
}

static void test_idx_errors(void **state) {
    (void)state;
    char dir[512], ip[600], lp[600], err[512] = "";
    make_dir(dir, sizeof dir, "idx_bad");
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte.gz", dir);
    dataset ds;

    /* Missing files, via the directory search and directly. */
    assert_int_equal(dataset_load_idx(&ds, dir, DATASET_TRAIN, NULL, err, sizeof err), MODA_ERR_IO);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz");
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_IO);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz");
    assert_null(ds.images);

    unsigned char pix[4 * 2 * 2] = {0}, lab[4] = {0, 1, 2, 3};
    uint32_t di[3] = {4, 2, 2}, dl[1] = {4};
    write_idx(lp, 1, 0x801, dl, 1, lab, 4);

    /* Images present but labels missing. */
    write_idx(ip, 1, 0x803, di, 3, pix, sizeof pix);
    char lp_missing[640];
    snprintf(lp_missing, sizeof lp_missing, "%s/other-labels", dir);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp_missing, NULL, err, sizeof err), MODA_ERR_IO);
    assert_err_mentions(err, "other-labels");

    /* Bad magic, with the exact wording. */
    write_idx(ip, 1, 0x0, di, 3, pix, sizeof pix);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz: bad magic 0x00000000 (expected 0x00000803)");
    write_idx(ip, 1, 0x803, di, 3, pix, sizeof pix);
    write_idx(lp, 1, 0x803, dl, 1, lab, 4);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-labels-idx1-ubyte.gz: bad magic 0x00000803 (expected 0x00000801)");
    write_idx(lp, 1, 0x801, dl, 1, lab, 4);

    /* Zero dimension. */
    uint32_t dz[3] = {4, 0, 2};
    write_idx(ip, 1, 0x803, dz, 3, pix, 0);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz: bad dimensions");

    /* Truncated header, truncated pixels, truncated labels. */
    write_bytes(ip, "\0\0\x08\x03\0\0", 6, 1);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz: truncated header");
    write_idx(ip, 1, 0x803, di, 3, pix, sizeof pix - 3);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz: truncated");
    write_idx(ip, 0, 0x803, di, 3, pix, sizeof pix - 1); /* uncompressed under a .gz name */
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz: truncated");
    write_idx(ip, 1, 0x803, di, 3, pix, sizeof pix);
    write_idx(lp, 1, 0x801, dl, 1, lab, 3);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-labels-idx1-ubyte.gz: truncated");

    /* Counts far beyond the file: a plain truncation, not an attempt to
     * allocate what the header claims (2^31 - 1 images of 4096 x 4096). */
    uint32_t dhuge[3] = {0x7fffffffu, 4096, 4096}, lhuge[1] = {0x7fffffffu};
    write_idx(ip, 0, 0x803, dhuge, 3, pix, sizeof pix);
    write_idx(lp, 0, 0x801, lhuge, 1, lab, 4);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-labels-idx1-ubyte.gz: truncated: 4 of 2147483647 bytes of labels");
    assert_null(ds.images);
    write_idx(ip, 1, 0x803, di, 3, pix, sizeof pix);
    write_idx(lp, 1, 0x801, dl, 1, lab, 4);

    /* Trailing bytes: the header's count does not describe the file. */
    write_idx(lp, 1, 0x801, dl, 1, (const unsigned char *)"\0\1\2\3\4", 5);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-labels-idx1-ubyte.gz");

    /* Count mismatch names both files. */
    uint32_t d3[1] = {3};
    write_idx(lp, 1, 0x801, d3, 1, lab, 3);
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "train-labels-idx1-ubyte.gz: 3 labels");
    assert_err_mentions(err, "train-images-idx3-ubyte.gz has 4 images");

    /* Corrupt gzip stream. */
    write_idx(lp, 1, 0x801, dl, 1, lab, 4);
    unsigned char junk[64];
    junk[0] = 0x1f;
    junk[1] = 0x8b;
    junk[2] = 8;
    for (int i = 3; i < 64; i++) junk[i] = (unsigned char)(i * 91);
    write_bytes(ip, junk, sizeof junk, 0);
    assert_int_not_equal(dataset_load_idx_files(&ds, ip, lp, NULL, err, sizeof err), MODA_OK);
    assert_err_mentions(err, "train-images-idx3-ubyte.gz");
    assert_null(ds.images);

    /* NULL err buffer is allowed. */
    assert_int_equal(dataset_load_idx_files(&ds, ip, lp, NULL, NULL, 0), MODA_ERR_FORMAT);
}

/* ---- CIFAR ------------------------------------------------------------ */

static unsigned char cifar_pixel(int global, int j) { return (unsigned char)((global * 131 + j * 7) & 0xff); }

/* Records for samples first..first+n-1 with the given labels; label_bytes
 * 2 writes a coarse label (fine % 20) before the fine one. */
static void write_cifar(const char *path, int first, int n, const int *labels, int label_bytes, size_t cut) {
    size_t rec = (size_t)label_bytes + 3072;
    unsigned char *buf = malloc(rec * (size_t)n + 1);
    for (int r = 0; r < n; r++) {
        unsigned char *p = buf + rec * r;
        if (label_bytes == 2) *p++ = (unsigned char)(labels[r] % 20);
        *p++ = (unsigned char)labels[r];
        for (int j = 0; j < 3072; j++) p[j] = cifar_pixel(first + r, j);
    }
    write_bytes(path, buf, rec * (size_t)n - cut, 0);
    free(buf);
}

static void check_cifar_pixels(const dataset *ds) {
    assert_int_equal(ds->c, 3);
    assert_int_equal(ds->h, 32);
    assert_int_equal(ds->w, 32);
    for (int i = 0; i < ds->n; i++)
        for (int j = 0; j < 3072; j++)
            assert_true(ds->images[(size_t)i * 3072 + j] == (float)cifar_pixel(i, j) / 255.0f);
}

static const int cifar_train_sizes[5] = {2, 3, 1, 2, 2};

static void write_cifar10_dir(const char *dir, int *labels_out) {
    char p[700];
    int at = 0;
    for (int b = 0; b < 5; b++) {
        int lab[3];
        for (int r = 0; r < cifar_train_sizes[b]; r++) lab[r] = labels_out[at + r] = (at + r) * 3 % 10;
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b + 1);
        write_cifar(p, at, cifar_train_sizes[b], lab, 1, 0);
        at += cifar_train_sizes[b];
    }
    const int test_lab[3] = {9, 0, 4};
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    write_cifar(p, 0, 3, test_lab, 1, 0);
}

static void test_cifar10_roundtrip(void **state) {
    (void)state;
    char dir[512], p[700], err[512] = "";
    make_dir(dir, sizeof dir, "c10");
    int labels[10];
    write_cifar10_dir(dir, labels);
    snprintf(p, sizeof p, "%s/batches.meta.txt", dir);
    write_text(p, "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n");

    dataset ds;
    assert_int_equal(dataset_load_cifar10(&ds, dir, DATASET_TRAIN, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 10);
    assert_int_equal(ds.num_classes, 10);
    check_cifar_pixels(&ds);
    for (int i = 0; i < 10; i++) assert_int_equal(ds.labels[i], labels[i]);
    assert_string_equal(ds.class_names[3], "a3");
    dataset_free(&ds);

    assert_int_equal(dataset_load(&ds, "cifar10", dir, DATASET_TEST, NULL, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 3);
    check_cifar_pixels(&ds);
    assert_int_equal(ds.labels[0], 9);
    assert_int_equal(ds.labels[2], 4);
    dataset_free(&ds);

    /* The archive's own subdirectory, found from its parent; built-in names. */
    char parent[512], sub[600];
    make_dir(parent, sizeof parent, "c10_parent");
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", parent);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_cifar10_dir(sub, labels);
    assert_int_equal(dataset_load_cifar10(&ds, parent, DATASET_TEST, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 3);
    assert_string_equal(ds.class_names[0], "airplane");
    assert_string_equal(ds.class_names[9], "truck");
    dataset_free(&ds);
}

static void test_cifar100_roundtrip(void **state) {
    (void)state;
    char dir[512], p[700], err[512] = "";
    make_dir(dir, sizeof dir, "c100");
    const int train[5] = {99, 0, 57, 21, 40}, test[2] = {1, 98};
    snprintf(p, sizeof p, "%s/train.bin", dir);
    write_cifar(p, 0, 5, train, 2, 0);
    snprintf(p, sizeof p, "%s/test.bin", dir);
    write_cifar(p, 0, 2, test, 2, 0);

    dataset ds;
    assert_int_equal(dataset_load_cifar100(&ds, dir, DATASET_TRAIN, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 5);
    assert_int_equal(ds.num_classes, 100);
    check_cifar_pixels(&ds);
    for (int i = 0; i < 5; i++) assert_int_equal(ds.labels[i], train[i]); /* fine, not coarse */
    assert_string_equal(ds.class_names[42], "class_42");
    dataset_free(&ds);

    char names[8192] = "";
    for (int k = 0; k < 100; k++) {
        char line[32];
        snprintf(line, sizeof line, "fine%d\n", k);
        strcat(names, line);
    }
    snprintf(p, sizeof p, "%s/fine_label_names.txt", dir);
    write_text(p, names);
    assert_int_equal(dataset_load(&ds, "cifar100", dir, DATASET_TEST, NULL, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 2);
    check_cifar_pixels(&ds);
    assert_int_equal(ds.labels[1], 98);
    assert_string_equal(ds.class_names[98], "fine98");
    dataset_free(&ds);

    /* A names file with the wrong count is an error naming it. */
    write_text(p, "one\ntwo\n");
    assert_int_equal(dataset_load_cifar100(&ds, dir, DATASET_TEST, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "fine_label_names.txt");
}

static void test_cifar_errors(void **state) {
    (void)state;
    char dir[512], p[700], err[512] = "";
    make_dir(dir, sizeof dir, "c10_bad");
    int labels[10];
    dataset ds;

    assert_int_equal(dataset_load_cifar10(&ds, dir, DATASET_TEST, err, sizeof err), MODA_ERR_IO);
    assert_err_mentions(err, "test_batch.bin");

    write_cifar10_dir(dir, labels);
    snprintf(p, sizeof p, "%s/data_batch_3.bin", dir);
    unlink(p);
    assert_int_equal(dataset_load_cifar10(&ds, dir, DATASET_TRAIN, err, sizeof err), MODA_ERR_IO);
    assert_err_mentions(err, "data_batch_3.bin");
    assert_null(ds.images);

    /* Size not a multiple of the record, and an empty file. */
    const int lab[2] = {1, 2};
    write_cifar(p, 0, 2, lab, 1, 100);
    assert_int_equal(dataset_load_cifar10(&ds, dir, DATASET_TRAIN, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "data_batch_3.bin: size 6046 bytes is not a positive multiple of the 3073-byte");
    write_bytes(p, "", 0, 0);
    assert_int_equal(dataset_load_cifar10(&ds, dir, DATASET_TRAIN, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "data_batch_3.bin: size 0 bytes");

    /* Label out of range. */
    const int bad[2] = {1, 10};
    write_cifar(p, 0, 2, bad, 1, 0);
    assert_int_equal(dataset_load_cifar10(&ds, dir, DATASET_TRAIN, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "data_batch_3.bin: record 1 has label 10");

    /* CIFAR-100: a CIFAR-10 file is not a multiple of the 3074-byte record;
     * fine label 100 is out of range. */
    char d100[512];
    make_dir(d100, sizeof d100, "c100_bad");
    snprintf(p, sizeof p, "%s/test.bin", d100);
    write_cifar(p, 0, 1, bad, 1, 0);
    assert_int_equal(dataset_load_cifar100(&ds, d100, DATASET_TEST, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "test.bin: size 3073 bytes");
    const int bad100[2] = {5, 100};
    write_cifar(p, 0, 2, bad100, 2, 0);
    assert_int_equal(dataset_load_cifar100(&ds, d100, DATASET_TEST, err, sizeof err), MODA_ERR_FORMAT);
    assert_err_mentions(err, "test.bin: record 1 has label 100");

    assert_int_equal(dataset_load(&ds, "svhn", d100, DATASET_TEST, NULL, err, sizeof err), MODA_ERR_NOT_FOUND);
    assert_err_mentions(err, "svhn");
    assert_int_equal(dataset_load(&ds, "cifar10", NULL, DATASET_TEST, NULL, err, sizeof err), MODA_ERR_ARG);
}

/* ---- Preprocessing ---------------------------------------------------- */

static void test_stats_and_normalize(void **state) {
    (void)state;
    dataset tr, te;
    /* 2 images, 2 channels, 2x2. Channel 0 holds 0..7 (/10), channel 1 is
     * constant 0.5. */
    assert_int_equal(dataset_alloc(&tr, 2, 2, 2, 2, 3), MODA_OK);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            tr.images[i * 8 + j] = (float)(i * 4 + j) / 10.0f;
            tr.images[i * 8 + 4 + j] = 0.5f;
        }
    float mean[2], std[2];
    assert_int_equal(dataset_compute_stats(&tr, mean, std), MODA_OK);
    /* mean 0.35; population variance sum((k - 3.5)^2)/8 / 100 = 5.25/100. */
    assert_float_equal(mean[0], 0.35f, 1e-6);
    assert_float_equal(std[0], sqrtf(0.0525f), 1e-6);
    assert_float_equal(mean[1], 0.5f, 1e-6);
    assert_float_equal(std[1], 1.0f, 0.0); /* constant channel: std floored to 1 */

    assert_int_equal(dataset_alloc(&te, 1, 2, 2, 2, 3), MODA_OK);
    for (int j = 0; j < 8; j++) te.images[j] = 0.8f;
    assert_int_equal(dataset_normalize_pair(&tr, &te), MODA_OK);
    assert_true(tr.normalized && te.normalized);
    assert_float_equal(tr.mean[0], mean[0], 0.0);
    assert_float_equal(te.std[0], std[0], 0.0);
    assert_float_equal(tr.images[8], (0.4f - 0.35f) / sqrtf(0.0525f), 1e-5);
    assert_float_equal(tr.images[4], 0.0f, 1e-6);
    assert_float_equal(te.images[0], (0.8f - 0.35f) / sqrtf(0.0525f), 1e-5);
    assert_float_equal(te.images[4], 0.3f, 1e-6);
    assert_float_equal(dataset_fill_value(&tr, 0), -0.35f / sqrtf(0.0525f), 1e-5);

    /* Normalising twice or computing stats on normalised data is refused. */
    assert_int_equal(dataset_normalize(&tr, mean, std), MODA_ERR_STATE);
    assert_int_equal(dataset_compute_stats(&tr, mean, std), MODA_ERR_STATE);
    float zero[2] = {0.0f, 0.0f};
    dataset_free(&te);
    assert_int_equal(dataset_alloc(&te, 1, 2, 2, 2, 3), MODA_OK);
    assert_int_equal(dataset_normalize(&te, mean, zero), MODA_ERR_ARG);
    dataset_free(&te);
    dataset_free(&tr);
}

static void test_padding(void **state) {
    (void)state;
    dataset ds;
    assert_int_equal(dataset_alloc(&ds, 2, 1, 2, 3, 2), MODA_OK);
    for (int j = 0; j < 12; j++) ds.images[j] = 0.1f + 0.05f * (float)j;
    float m0[1], s0[1], m1[1], s1[1];
    assert_int_equal(dataset_compute_stats(&ds, m0, s0), MODA_OK);
    assert_int_equal(dataset_pad(&ds, 2), MODA_OK);
    assert_int_equal(ds.h, 6);
    assert_int_equal(ds.w, 7);
    assert_int_equal(ds.pad, 2);
    for (int i = 0; i < 2; i++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 7; x++) {
                float v = ds.images[i * 42 + y * 7 + x];
                int inside = y >= 2 && y < 4 && x >= 2 && x < 5;
                float want = inside ? 0.1f + 0.05f * (float)(i * 6 + (y - 2) * 3 + (x - 2)) : 0.0f;
                assert_float_equal(v, want, 1e-7);
            }
    /* The border does not change the statistics. */
    assert_int_equal(dataset_compute_stats(&ds, m1, s1), MODA_OK);
    assert_float_equal(m0[0], m1[0], 1e-7);
    assert_float_equal(s0[0], s1[0], 1e-7);

    /* Padding after normalisation also writes raw black, -mean/std. */
    assert_int_equal(dataset_normalize(&ds, m0, s0), MODA_OK);
    assert_float_equal(ds.images[0], -m0[0] / s0[0], 1e-5);
    assert_int_equal(dataset_pad(&ds, 1), MODA_OK);
    assert_int_equal(ds.h, 8);
    assert_int_equal(ds.pad, 3);
    assert_float_equal(ds.images[0], -m0[0] / s0[0], 1e-6);
    assert_float_equal(ds.images[8 + 1], -m0[0] / s0[0], 1e-6);
    assert_float_equal(ds.images[3 * 9 + 3], (0.1f - m0[0]) / s0[0], 1e-5);
    assert_int_equal(dataset_pad(&ds, -1), MODA_ERR_ARG);
    dataset_free(&ds);
}

/* n samples, 1 channel h x w, image i filled with value i. */
static void make_indexed(dataset *ds, int n, int c, int h, int w, int k, const int *labels) {
    assert_int_equal(dataset_alloc(ds, n, c, h, w, k), MODA_OK);
    size_t img = (size_t)c * h * w;
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < img; j++) ds->images[i * img + j] = (float)i;
        ds->labels[i] = labels ? labels[i] : i % k;
    }
}

static void test_subset(void **state) {
    (void)state;
    const int labels[9] = {0, 1, 0, 2, 0, 1, 1, 2, 0};
    dataset ds;
    make_indexed(&ds, 9, 1, 2, 2, 4, labels);
    int counts[4];
    dataset_class_counts(&ds, counts);
    assert_int_equal(counts[0], 4);
    assert_int_equal(counts[3], 0);
    assert_int_equal(dataset_subset_per_class(&ds, 0), MODA_ERR_ARG);
    assert_int_equal(dataset_subset_per_class(&ds, 2), MODA_OK);
    const int kept[6] = {0, 1, 2, 3, 5, 7};
    assert_int_equal(ds.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_float_equal(ds.images[i * 4 + 3], (float)kept[i], 0.0);
        assert_int_equal(ds.labels[i], labels[kept[i]]);
    }
    dataset_class_counts(&ds, counts);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 2);
    assert_int_equal(counts[2], 2);
    assert_int_equal(dataset_subset_per_class(&ds, 100), MODA_OK);
    assert_int_equal(ds.n, 6);
    dataset_free(&ds);
}

static void test_sort_by_class(void **state) {
    (void)state;
    const int labels[9] = {2, 0, 1, 0, 2, 2, 0, 1, 0};
    dataset ds;
    make_indexed(&ds, 9, 1, 2, 2, 4, labels);
    int start[5];
    assert_int_equal(dataset_sort_by_class(&ds, NULL), MODA_ERR_NULL);
    assert_int_equal(dataset_sort_by_class(&ds, start), MODA_OK);
    /* Class by class, each in its original order; class 3 is empty. */
    const int order[9] = {1, 3, 6, 8, 2, 7, 0, 4, 5};
    const int want_start[5] = {0, 4, 6, 9, 9};
    assert_int_equal(ds.n, 9);
    for (int i = 0; i < 9; i++) {
        for (int j = 0; j < 4; j++) assert_float_equal(ds.images[i * 4 + j], (float)order[i], 0.0);
        assert_int_equal(ds.labels[i], labels[order[i]]);
    }
    for (int c = 0; c < 5; c++) assert_int_equal(start[c], want_start[c]);
    dataset_free(&ds);
}

/* ---- Batch iterator --------------------------------------------------- */

/* Sample indices of one epoch, read back from the image values. */
static void epoch_order(dataset_iter *it, int epoch, int *order, int *sizes) {
    const dataset *ds = it->ds;
    size_t img = (size_t)ds->c * ds->h * ds->w;
    float *buf = tu_alloc((size_t)it->batch_size * img);
    int32_t *lab = calloc((size_t)it->batch_size, sizeof(int32_t));
    dataset_iter_begin_epoch(it, epoch);
    int at = 0, b = 0, cnt;
    while ((cnt = dataset_iter_next(it, buf, lab)) > 0) {
        sizes[b++] = cnt;
        for (int i = 0; i < cnt; i++) {
            int s = (int)buf[i * img];
            assert_int_equal(lab[i], ds->labels[s]);
            order[at++] = s;
        }
    }
    assert_int_equal(b, it->num_batches);
    assert_int_equal(at, ds->n);
    assert_int_equal(dataset_iter_next(it, buf, lab), 0);
    free(buf);
    free(lab);
}

static void test_iterator(void **state) {
    (void)state;
    enum { N = 10, B = 4 };
    dataset ds;
    make_indexed(&ds, N, 1, 2, 2, 3, NULL);
    dataset_iter it, it2;
    assert_int_equal(dataset_iter_init(&it, &ds, 0, 1, NULL, 1), MODA_ERR_ARG);
    assert_int_equal(dataset_iter_init(&it, &ds, B, 1, NULL, 42), MODA_OK);
    assert_int_equal(dataset_iter_init(&it2, &ds, B, 1, NULL, 42), MODA_OK);
    assert_int_equal(it.num_batches, 3);

    int o0[N], o1[N], o0b[N], sizes[3];
    epoch_order(&it, 0, o0, sizes);
    assert_int_equal(sizes[0], 4);
    assert_int_equal(sizes[1], 4);
    assert_int_equal(sizes[2], 2); /* last partial batch kept */
    int seen[N] = {0};
    for (int i = 0; i < N; i++) seen[o0[i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);

    epoch_order(&it, 1, o1, sizes);
    assert_memory_not_equal(o0, o1, sizeof o0);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) seen[o1[i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);

    /* Same seed, same epoch: same order, whatever ran before. */
    epoch_order(&it2, 0, o0b, sizes);
    assert_memory_equal(o0, o0b, sizeof o0);
    epoch_order(&it, 5, o0b, sizes);
    epoch_order(&it, 0, o0b, sizes);
    assert_memory_equal(o0, o0b, sizeof o0);
    dataset_iter_free(&it2);

    /* Another seed gives another order; no shuffle is dataset order. */
    assert_int_equal(dataset_iter_init(&it2, &ds, B, 1, NULL, 43), MODA_OK);
    epoch_order(&it2, 0, o0b, sizes);
    assert_memory_not_equal(o0, o0b, sizeof o0);
    dataset_iter_free(&it2);
    assert_int_equal(dataset_iter_init(&it2, &ds, B, 0, NULL, 42), MODA_OK);
    epoch_order(&it2, 3, o0b, sizes);
    for (int i = 0; i < N; i++) assert_int_equal(o0b[i], i);
    dataset_iter_free(&it2);

    /* Resume: seek to batch 1 of epoch 1 gives what the full epoch gave. */
    float buf[B * 4];
    int32_t lab[B];
    dataset_iter_begin_epoch(&it, 1);
    dataset_iter_seek(&it, 1);
    assert_int_equal(dataset_iter_next(&it, buf, lab), 4);
    for (int i = 0; i < 4; i++) assert_int_equal((int)buf[i * 4], o1[4 + i]);
    assert_int_equal(dataset_iter_batch(&it, 3, buf, lab), 0);
    assert_int_equal(dataset_iter_batch(&it, 2, buf, lab), 2);
    assert_int_equal((int)buf[4], o1[9]);

    /* Batch larger than the dataset: one partial batch. */
    dataset_iter_free(&it);
    assert_int_equal(dataset_iter_init(&it, &ds, 64, 1, NULL, 7), MODA_OK);
    assert_int_equal(it.num_batches, 1);
    float big[64 * 4];
    int32_t big_lab[64];
    assert_int_equal(dataset_iter_next(&it, big, big_lab), N);
    dataset_iter_free(&it);
    dataset_iter_free(NULL);
    dataset_free(&ds);
    dataset_free(NULL);
    dataset_free_names(NULL, 0);
}

/* ---- Augmentation ----------------------------------------------------- */

static void test_transform_known(void **state) {
    (void)state;
    /* 2 channels, 3 x 4, values 1..12 and 101..112. */
    float src[24], dst[24];
    for (int j = 0; j < 12; j++) {
        src[j] = (float)(j + 1);
        src[12 + j] = (float)(j + 101);
    }
    const float fill[2] = {-1.0f, -2.0f};

    dataset_transform_image(dst, src, 2, 3, 4, 0, 0, 0, fill);
    assert_memory_equal(dst, src, sizeof src);

    /* Mirror only. */
    const float mirror0[12] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9};
    dataset_transform_image(dst, src, 2, 3, 4, 0, 0, 1, fill);
    assert_memory_equal(dst, mirror0, sizeof mirror0);
    assert_float_equal(dst[12], 104.0f, 0.0);

    /* Shift: dst[y][x] = src[y+1][x-2]. */
    const float shift0[12] = {-1, -1, 5, 6, -1, -1, 9, 10, -1, -1, -1, -1};
    const float shift1[12] = {-2, -2, 105, 106, -2, -2, 109, 110, -2, -2, -2, -2};
    dataset_transform_image(dst, src, 2, 3, 4, 1, -2, 0, fill);
    assert_memory_equal(dst, shift0, sizeof shift0);
    assert_memory_equal(dst + 12, shift1, sizeof shift1);

    /* Crop then flip: the mirror of the shifted image. */
    const float both0[12] = {6, 5, -1, -1, 10, 9, -1, -1, -1, -1, -1, -1};
    dataset_transform_image(dst, src, 2, 3, 4, 1, -2, 1, fill);
    assert_memory_equal(dst, both0, sizeof both0);

    /* Shifts as large as the image leave only fill. */
    const int far[4][3] = {{-3, 0, 0}, {0, 9, 0}, {0, -9, 1}, {0, 4, 1}};
    for (int t = 0; t < 4; t++) {
        dataset_transform_image(dst, src, 2, 3, 4, far[t][0], far[t][1], far[t][2], fill);
        for (int j = 0; j < 12; j++) assert_float_equal(dst[j], -1.0f, 0.0);
    }

    /* Switching the crop off leaves the flip choices as they were. */
    dataset_augment both = {.crop_pad = 4, .flip = 1}, flip_only = {.crop_pad = 0, .flip = 1};
    for (int pos = 0; pos < 50; pos++) {
        int dy, dx, f1, f2;
        dataset_augment_params(&both, 11, 2, pos, &dy, &dx, &f1);
        dataset_augment_params(&flip_only, 11, 2, pos, &dy, &dx, &f2);
        assert_int_equal(f1, f2);
        assert_int_equal(dy, 0);
        assert_int_equal(dx, 0);
    }
}

/* Runs one augmented epoch and checks every sample against the transform
 * its parameters describe; returns flips seen and marks shifts seen. */
static int check_augmented_epoch(const dataset *ds, dataset_iter *it, int epoch, float *out, int *dy_seen) {
    size_t img = (size_t)ds->c * ds->h * ds->w;
    float *buf = tu_alloc((size_t)it->batch_size * img), *want = tu_alloc(img);
    int32_t *lab = calloc((size_t)it->batch_size, sizeof(int32_t));
    float fill[DATASET_MAX_CHANNELS];
    for (int ch = 0; ch < ds->c; ch++) fill[ch] = dataset_fill_value(ds, ch);
    int flips = 0, b = 0, cnt;
    dataset_iter_begin_epoch(it, epoch);
    while ((cnt = dataset_iter_next(it, buf, lab)) > 0) {
        for (int i = 0; i < cnt; i++) {
            int64_t pos = (int64_t)b * it->batch_size + i;
            int s = it->order[pos], dy, dx, flip;
            dataset_augment_params(&it->aug, it->seed, epoch, pos, &dy, &dx, &flip);
            assert_true(dy >= -it->aug.crop_pad && dy <= it->aug.crop_pad);
            assert_true(dx >= -it->aug.crop_pad && dx <= it->aug.crop_pad);
            if (!it->aug.flip) assert_int_equal(flip, 0);
            flips += flip;
            if (dy_seen) dy_seen[dy + it->aug.crop_pad] = 1;
            dataset_transform_image(want, ds->images + (size_t)s * img, ds->c, ds->h, ds->w, dy, dx, flip, fill);
            assert_memory_equal(buf + i * img, want, img * sizeof(float));
            assert_int_equal(lab[i], ds->labels[s]);
        }
        memcpy(out + (size_t)b * it->batch_size * img, buf, (size_t)cnt * img * sizeof(float));
        b++;
    }
    free(buf);
    free(want);
    free(lab);
    return flips;
}

static void test_augment_iterator(void **state) {
    (void)state;
    enum { N = 400, B = 64 };
    dataset ds;
    assert_int_equal(dataset_alloc(&ds, N, 3, 32, 32, 10), MODA_OK);
    rng r;
    rng_seed(&r, 5, 0);
    rng_fill_uniform(&r, ds.images, (size_t)N * 3072, 0.0f, 1.0f);
    for (int i = 0; i < N; i++) ds.labels[i] = i % 10;
    assert_int_equal(dataset_normalize_pair(&ds, NULL), MODA_OK);

    dataset_augment aug = {.crop_pad = 4, .flip = 1};
    dataset_iter it;
    assert_int_equal(dataset_iter_init(&it, &ds, B, 1, &aug, 99), MODA_OK);
    float *e0 = tu_alloc((size_t)N * 3072), *e0b = tu_alloc((size_t)N * 3072), *e1 = tu_alloc((size_t)N * 3072);
    int dy_seen[9] = {0};
    int flips = check_augmented_epoch(&ds, &it, 0, e0, dy_seen);
    assert_true(flips > N / 2 - 60 && flips < N / 2 + 60);
    for (int k = 0; k < 9; k++) assert_true(dy_seen[k]);

    /* One batch of the whole epoch (large enough to be split between
     * threads), on two threads and on one: the same output as batches of
     * B, since a sample's choice depends only on its place in the epoch. */
    dataset_iter whole;
    assert_int_equal(dataset_iter_init(&whole, &ds, N, 1, &aug, 99), MODA_OK);
    int threads = omp_get_max_threads();
    omp_set_num_threads(2);
    check_augmented_epoch(&ds, &whole, 0, e0b, NULL);
    assert_memory_equal(e0, e0b, (size_t)N * 3072 * sizeof(float));
    omp_set_num_threads(1);
    memset(e0b, 0, (size_t)N * 3072 * sizeof(float));
    check_augmented_epoch(&ds, &whole, 0, e0b, NULL);
    omp_set_num_threads(threads);
    assert_memory_equal(e0, e0b, (size_t)N * 3072 * sizeof(float));
    dataset_iter_free(&whole);

    /* Another epoch: other choices. A resumed iterator: the same. */
    check_augmented_epoch(&ds, &it, 1, e1, NULL);
    assert_memory_not_equal(e0, e1, (size_t)N * 3072 * sizeof(float));
    dataset_iter it2;
    assert_int_equal(dataset_iter_init(&it2, &ds, B, 1, &aug, 99), MODA_OK);
    float *buf = tu_alloc((size_t)B * 3072);
    int32_t lab[B];
    dataset_iter_begin_epoch(&it2, 1);
    dataset_iter_seek(&it2, 3);
    assert_int_equal(dataset_iter_next(&it2, buf, lab), B);
    assert_memory_equal(buf, e1 + (size_t)3 * B * 3072, (size_t)B * 3072 * sizeof(float));
    dataset_iter_seek(&it2, it2.num_batches - 1);
    assert_int_equal(dataset_iter_next(&it2, buf, lab), N % B);
    assert_memory_equal(buf, e1 + (size_t)(N - N % B) * 3072, (size_t)(N % B) * 3072 * sizeof(float));
    assert_int_equal(dataset_iter_next(&it2, buf, lab), 0);
    dataset_iter_free(&it2);

    /* Flip only: every output is the image or its mirror, never shifted. */
    dataset_augment flip_only = {.crop_pad = 0, .flip = 1};
    assert_int_equal(dataset_iter_init(&it2, &ds, B, 1, &flip_only, 3), MODA_OK);
    flips = check_augmented_epoch(&ds, &it2, 0, e0b, NULL);
    assert_true(flips > 0 && flips < N);
    dataset_iter_free(&it2);

    /* Crop border is raw black in normalised space. */
    float want[3];
    for (int c = 0; c < 3; c++) want[c] = -ds.mean[c] / ds.std[c];
    int bordered = 0;
    for (int i = 0; i < N && !bordered; i++) {
        int dy, dx, flip;
        dataset_augment_params(&aug, 99, 0, i, &dy, &dx, &flip);
        if (dy == 4) {
            for (int c = 0; c < 3; c++)
                assert_float_equal(e0[(size_t)i * 3072 + (size_t)c * 1024 + 31 * 32 + 5], want[c], 1e-6);
            bordered = 1;
        }
    }
    assert_true(bordered);

    dataset_augment too_big = {.crop_pad = 32, .flip = 0};
    assert_int_equal(dataset_iter_init(&it2, &ds, B, 1, &too_big, 3), MODA_ERR_ARG);
    free(buf);
    free(e0);
    free(e0b);
    free(e1);
    dataset_iter_free(&it);
    dataset_free(&ds);
}

/* ---- Real data -------------------------------------------------------- */

static void test_fashion_mnist_real(void **state) {
    (void)state;
    if (access(DATASET_FASHION_MNIST_DIR, F_OK) != 0) {
        skip();
        return;
    }
    char err[512] = "";
    dataset ds;
    moda_status st = dataset_load(&ds, "fashion-mnist", NULL, DATASET_TEST, NULL, err, sizeof err);
    if (st != MODA_OK) fail_msg("%s", err);
    assert_int_equal(ds.n, 10000);
    assert_int_equal(ds.c, 1);
    assert_int_equal(ds.h, 28);
    assert_int_equal(ds.w, 28);
    assert_int_equal(ds.num_classes, 10);
    int counts[10];
    dataset_class_counts(&ds, counts);
    for (int k = 0; k < 10; k++) assert_int_equal(counts[k], 1000);
    assert_string_equal(ds.class_names[9], "Ankle boot");
    float mean[1], std[1];
    assert_int_equal(dataset_compute_stats(&ds, mean, std), MODA_OK);
    assert_true(mean[0] > 0.25f && mean[0] < 0.32f); /* Fashion-MNIST is ~0.286 / 0.353 */
    assert_true(std[0] > 0.32f && std[0] < 0.38f);
    assert_int_equal(dataset_pad(&ds, 2), MODA_OK);
    assert_int_equal(ds.h, 32);
    assert_int_equal(dataset_subset_per_class(&ds, 10), MODA_OK);
    assert_int_equal(ds.n, 100);
    dataset_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_roundtrip),
        cmocka_unit_test(test_idx_names_file),
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_cifar10_roundtrip),
        cmocka_unit_test(test_cifar100_roundtrip),
        cmocka_unit_test(test_cifar_errors),
        cmocka_unit_test(test_stats_and_normalize),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_subset),
        cmocka_unit_test(test_sort_by_class),
        cmocka_unit_test(test_iterator),
        cmocka_unit_test(test_transform_known),
        cmocka_unit_test(test_augment_iterator),
        cmocka_unit_test(test_fashion_mnist_real),
    };
    return cmocka_run_group_tests(tests, setup_suite, teardown_suite);
}
