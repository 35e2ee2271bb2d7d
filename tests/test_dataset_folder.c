/* The image-folder loader (dataset_load_folder, kind "folder"): class
 * names from the folders in byte order, files in name order, pixels fitted
 * and scaled to [0, 1], channels from the training split, unreadable files
 * skipped with a report and a count or failing in strict mode, mismatched
 * class folders, and the memory bound. */
#include "image_util.h"

#include "dataset.h"

static char root[256];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moda_folder_XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tu_rm_rf(root);
    return 0;
}

/* A fresh data directory <root>/<name> with train/ and test/. */
static void fresh(char *dir, size_t len, const char *name) {
    snprintf(dir, len, "%s/%s", root, name);
    tu_rm_rf(dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/train", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/test", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
}

static void class_dir(const char *dir, const char *split, const char *cls) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s/%s", dir, split, cls);
    assert_int_equal(mkdir(p, 0700), 0);
}

static void put_file(const char *dir, const char *rel, const void *data, size_t len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    tu_write_file(p, data, len);
}

/* A w x h gray PNG of one value. */
static void put_gray(const char *dir, const char *rel, int w, int h, uint8_t v) {
    uint8_t *px = malloc((size_t)w * h);
    memset(px, v, (size_t)w * h);
    tu_buf b = tu_png8(px, w, h, 1);
    put_file(dir, rel, b.data, b.len);
    free(b.data);
    free(px);
}

/* A one-pixel-per-class tree: classes "C", "a_cls", "b_cls" (byte order:
 * upper case first), 4x4 gray images whose value says which file it is. */
static void make_tree(char *dir, size_t len, const char *name) {
    fresh(dir, len, name);
    const char *cls[3] = {"b_cls", "C", "a_cls"};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++) class_dir(dir, s ? "test" : "train", cls[k]);
    put_gray(dir, "train/a_cls/2.png", 4, 4, 12);
    put_gray(dir, "train/a_cls/10.png", 4, 4, 11); /* "10" sorts before "2" */
    put_gray(dir, "train/b_cls/x.png", 4, 4, 20);
    put_gray(dir, "train/C/z.png", 4, 4, 30);
    put_gray(dir, "train/C/y.png", 4, 4, 31);
    put_gray(dir, "test/a_cls/t.png", 4, 4, 40);
    put_gray(dir, "test/C/t.png", 4, 4, 41);
    put_file(dir, "train/C/.hidden", "x", 1); /* ignored without a word */
}

static dataset_load_options quiet(FILE *log) { return (dataset_load_options){.image_size = 4, .log = log}; }

static char *read_log(FILE *log) {
    static char text[4096];
    fflush(log);
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    return text;
}

static void test_classes_order_and_pixels(void **state) {
    (void)state;
    char dir[300], err[1024] = "";
    make_tree(dir, sizeof dir, "basic");
    FILE *log = tmpfile();
    dataset_load_options o = quiet(log);
    dataset ds;
    moda_status st = dataset_load(&ds, "folder", dir, DATASET_TRAIN, &o, err, sizeof err);
    if (st != MODA_OK) fail_msg("%s", err);
    assert_int_equal(ds.num_classes, 3);
    assert_string_equal(ds.class_names[0], "C");
    assert_string_equal(ds.class_names[1], "a_cls");
    assert_string_equal(ds.class_names[2], "b_cls");
    assert_int_equal(ds.n, 5);
    assert_int_equal(ds.c, 1);
    assert_int_equal(ds.h, 4);
    assert_int_equal(ds.w, 4);
    assert_int_equal(ds.pad, 0);
    /* By class, then by file name: C/y, C/z, a_cls/10, a_cls/2, b_cls/x. */
    const int labels[5] = {0, 0, 1, 1, 2}, values[5] = {31, 30, 11, 12, 20};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ds.labels[i], labels[i]);
        for (int j = 0; j < 16; j++) assert_float_equal(ds.images[i * 16 + j], values[i] / 255.0f, 0);
    }
    assert_non_null(strstr(ds.source, "folder train"));
    assert_string_equal(read_log(log), ""); /* nothing skipped, nothing said */
    dataset_free(&ds);

    /* The test split, with a class that has no test images. */
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TEST, &o, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 2);
    assert_int_equal(ds.num_classes, 3);
    assert_int_equal(ds.labels[0], 0);
    assert_int_equal(ds.labels[1], 1);
    assert_float_equal(ds.images[0], 41 / 255.0f, 0);
    dataset_free(&ds);
    fclose(log);
}

/* Images of other sizes are fitted by image_fit's rule; one colour
 * training image makes both splits RGB, gray ones replicated. */
static void test_fit_and_channels(void **state) {
    (void)state;
    char dir[300], err[1024] = "";
    fresh(dir, sizeof dir, "colour");
    class_dir(dir, "train", "k");
    class_dir(dir, "test", "k");
    /* 8x4 gray, left half 0 and right half 200: fitted to 4x4 it is the
     * centre crop, columns 2..5: 0, 0, 200, 200. */
    uint8_t wide[32];
    for (int i = 0; i < 32; i++) wide[i] = (i % 8) < 4 ? 0 : 200;
    tu_buf b = tu_png8(wide, 8, 4, 1);
    put_file(dir, "train/k/a.png", b.data, b.len);
    free(b.data);
    dataset_load_options o = quiet(NULL);
    o.log = tmpfile();
    dataset ds;
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_OK);
    assert_int_equal(ds.c, 1);
    const float want_row[4] = {0, 0, 200 / 255.0f, 200 / 255.0f};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) assert_float_equal(ds.images[y * 4 + x], want_row[x], 0);
    dataset_free(&ds);

    /* Add an RGB JPEG: now 3 channels, the gray PNG replicated. */
    uint8_t rgb[4 * 4 * 3];
    for (int i = 0; i < 16; i++) {
        rgb[3 * i] = 200;
        rgb[3 * i + 1] = 100;
        rgb[3 * i + 2] = 50;
    }
    b = tu_jpeg(rgb, 4, 4, 3, 95);
    put_file(dir, "train/k/b.jpeg.txt", b.data, b.len); /* the name does not matter */
    free(b.data);
    put_gray(dir, "test/k/t.png", 4, 4, 77);
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_OK);
    assert_int_equal(ds.c, 3);
    assert_int_equal(ds.n, 2);
    for (int c = 0; c < 3; c++) assert_float_equal(ds.images[c * 16 + 3], 200 / 255.0f, 0);
    assert_float_equal(ds.images[48 + 0], 200 / 255.0f, 3 / 255.0f); /* the JPEG's R, within JPEG's error */
    assert_float_equal(ds.images[48 + 16], 100 / 255.0f, 3 / 255.0f);
    dataset_free(&ds);
    /* The gray test split follows the training split: 3 channels. */
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TEST, &o, err, sizeof err), MODA_OK);
    assert_int_equal(ds.c, 3);
    assert_float_equal(ds.images[32], 77 / 255.0f, 0);
    dataset_free(&ds);
    /* Unless the caller fixes the channels (a trained model's). */
    o.channels = 1;
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_OK);
    assert_int_equal(ds.c, 1);
    /* luma of (200, 100, 50) = 124.2, JPEG's error aside */
    assert_float_equal(ds.images[16], 124 / 255.0f, 3 / 255.0f);
    dataset_free(&ds);
    fclose(o.log);
}

/* A file that is not an image (or is a broken one) is reported with its
 * path and skipped, with a count; strict mode fails on it by name. */
static void test_skip_and_strict(void **state) {
    (void)state;
    char dir[300], err[1024] = "";
    make_tree(dir, sizeof dir, "skip");
    put_file(dir, "train/a_cls/notes.txt", "not an image", 12);
    uint8_t px[16] = {0};
    tu_buf b = tu_png8(px, 4, 4, 1);
    put_file(dir, "train/b_cls/cut.png", b.data, b.len - 20); /* the header reads; the pixels do not */
    free(b.data);
    FILE *log = tmpfile();
    dataset_load_options o = quiet(log);
    dataset ds;
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 5);
    const int labels[5] = {0, 0, 1, 1, 2};
    for (int i = 0; i < 5; i++) assert_int_equal(ds.labels[i], labels[i]);
    assert_float_equal(ds.images[4 * 16], 20 / 255.0f, 0); /* b_cls/x.png after the broken cut.png */
    const char *text = read_log(log);
    char want[400];
    snprintf(want, sizeof want, "skipped %s/train/a_cls/notes.txt: not a PNG or JPEG image", dir);
    if (!strstr(text, want)) fail_msg("log '%s' lacks '%s'", text, want);
    snprintf(want, sizeof want, "skipped %s/train/b_cls/cut.png: PNG: ", dir);
    if (!strstr(text, want)) fail_msg("log '%s' lacks '%s'", text, want);
    if (!strstr(text, "skipped 2 of 7 files")) fail_msg("log '%s' has no count", text);
    dataset_free(&ds);

    o.strict_images = true;
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_ERR_FORMAT);
    snprintf(want, sizeof want, "%s/train/a_cls/notes.txt", dir);
    if (!strstr(err, want)) fail_msg("'%s' does not name '%s'", err, want);
    assert_null(ds.images);
    assert_int_equal(ds.n, 0);
    fclose(log);
}

static void test_layout_errors(void **state) {
    (void)state;
    char dir[300], err[1024] = "";
    dataset ds;
    dataset_load_options o = quiet(NULL);
    o.log = tmpfile();
    make_tree(dir, sizeof dir, "mismatch");
    class_dir(dir, "test", "dog");
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_ERR_FORMAT);
    if (!strstr(err, "same class folders") || !strstr(err, "'dog' is only in test")) fail_msg("%s", err);

    make_tree(dir, sizeof dir, "mismatch2");
    class_dir(dir, "train", "zebra");
    put_gray(dir, "train/zebra/z.png", 4, 4, 1);
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TEST, &o, err, sizeof err), MODA_ERR_FORMAT);
    if (!strstr(err, "'zebra' is only in train")) fail_msg("%s", err);

    make_tree(dir, sizeof dir, "empty_class");
    class_dir(dir, "train", "zz");
    class_dir(dir, "test", "zz");
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_ERR_FORMAT);
    if (!strstr(err, "train/zz: no files")) fail_msg("%s", err);

    fresh(dir, sizeof dir, "no_test");
    char sub[400];
    snprintf(sub, sizeof sub, "%s/test", dir);
    tu_rm_rf(sub);
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_ERR_IO);
    if (!strstr(err, "/test: cannot open")) fail_msg("%s", err);

    snprintf(sub, sizeof sub, "%s/none", root);
    assert_int_equal(dataset_load(&ds, "folder", sub, DATASET_TRAIN, &o, err, sizeof err), MODA_ERR_IO);
    assert_int_equal(dataset_load(&ds, "folder", NULL, DATASET_TRAIN, &o, err, sizeof err), MODA_ERR_ARG);
    fclose(o.log);
}

/* Over the memory bound: refused before allocating, with both numbers. */
static void test_memory_bound(void **state) {
    (void)state;
    char dir[300], err[1024] = "";
    make_tree(dir, sizeof dir, "bound");
    dataset_load_options o = quiet(NULL);
    o.log = tmpfile();
    o.image_size = 64;
    o.max_bytes = 5 * 64 * 64 * 4 - 1; /* one byte short of five 64x64 gray images */
    dataset ds;
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_ERR_NOMEM);
    if (!strstr(err, "5 images of 1x64x64 need 81920 bytes") || !strstr(err, "bound of 81919 bytes"))
        fail_msg("%s", err);
    assert_null(ds.images);
    o.max_bytes++;
    assert_int_equal(dataset_load_folder(&ds, dir, DATASET_TRAIN, &o, err, sizeof err), MODA_OK);
    assert_int_equal(ds.h, 64);
    dataset_free(&ds);
    assert_true(dataset_folder_max_bytes_default() > 0);
    fclose(o.log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_order_and_pixels),
        cmocka_unit_test(test_fit_and_channels),
        cmocka_unit_test(test_skip_and_strict),
        cmocka_unit_test(test_layout_errors),
        cmocka_unit_test(test_memory_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
