/* The CIFAR-10 and CIFAR-100 readers. They read a directory, so each input
 * is written to a private temporary one: the first byte picks the format
 * (bit 0) and whether a class-names file is written (bit 1; the next two
 * bytes, little-endian, are then its length), and the rest is the test
 * batch, gzip-compressed or not. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];
static const char *const files[] = {"test_batch.bin", "test.bin", "batches.meta.txt", "fine_label_names.txt"};

static void remove_files(void) {
    char path[320];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
}

static void remove_dir(void) {
    remove_files();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR"); /* a tmpfs there makes the runs several times faster */
    int n = snprintf(dir, sizeof dir, "%s/moda-fuzz-cifar-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof dir || !mkdtemp(dir)) {
        fprintf(stderr, "cannot make a directory under %s\n", tmp && *tmp ? tmp : "/tmp");
        abort();
    }
    atexit(remove_dir);
    return 0;
}

static void write_file(const char *name, const uint8_t *data, size_t size) {
    char path[320];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const bool c100 = data[0] & 1, names = data[0] & 2;
    size_t at = 1;
    remove_files();
    if (names) {
        if (size < 3) return 0;
        size_t n = (size_t)(data[1] | data[2] << 8);
        if (n > size - 3) n = size - 3;
        write_file(c100 ? files[3] : files[2], data + 3, n);
        at = 3 + n;
    }
    write_file(c100 ? files[1] : files[0], data + at, size - at);
    dataset ds;
    char err[1024] = "";
    moda_status s = c100 ? dataset_load_cifar100(&ds, dir, DATASET_TEST, err, sizeof err)
                         : dataset_load_cifar10(&ds, dir, DATASET_TEST, err, sizeof err);
    if (s != MODA_OK) {
        if (!err[0]) abort(); /* an error always says why */
        return 0;
    }
    /* Whatever loads is a dataset the trainer can use: labels in range and
     * a name for every class. */
    if (ds.c != 3 || ds.h != 32 || ds.w != 32 || ds.n < 1) abort();
    for (int i = 0; i < ds.n; i++)
        if (ds.labels[i] < 0 || ds.labels[i] >= ds.num_classes) abort();
    for (int k = 0; k < ds.num_classes; k++)
        if (!ds.class_names[k] || !ds.class_names[k][0]) abort();
    dataset_free(&ds);
    return 0;
}
