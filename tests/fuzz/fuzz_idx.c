/* The IDX reader (MNIST, Fashion-MNIST). It reads files, so each input is
 * written to two in a private temporary directory: the first two bytes
 * (little-endian) are the labels file's length, then come the labels file
 * and the images file, each gzip-compressed or not. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], images[320], labels[320];

static void remove_dir(void) {
    unlink(images);
    unlink(labels);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR"); /* a tmpfs there makes the runs several times faster */
    int n = snprintf(dir, sizeof dir, "%s/moda-fuzz-idx-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof dir || !mkdtemp(dir)) {
        fprintf(stderr, "cannot make a directory under %s\n", tmp && *tmp ? tmp : "/tmp");
        abort();
    }
    snprintf(images, sizeof images, "%s/images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/labels-idx1-ubyte", dir);
    atexit(remove_dir);
    return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t n = (size_t)(data[0] | data[1] << 8);
    if (n > size - 2) n = size - 2;
    write_file(labels, data + 2, n);
    write_file(images, data + 2 + n, size - 2 - n);
    dataset ds;
    char err[1024] = "";
    if (dataset_load_idx_files(&ds, images, labels, NULL, err, sizeof err) != MODA_OK) {
        if (!err[0]) abort(); /* an error always says why */
        return 0;
    }
    if (ds.c != 1 || ds.n < 1 || ds.h < 1 || ds.w < 1 || ds.num_classes < 1) abort();
    for (int i = 0; i < ds.n; i++)
        if (ds.labels[i] < 0 || ds.labels[i] >= ds.num_classes) abort();
    for (size_t i = 0; i < (size_t)ds.n * (size_t)ds.h * (size_t)ds.w; i++)
        if (!(ds.images[i] >= 0.0f && ds.images[i] <= 1.0f)) abort();
    dataset_free(&ds);
    return 0;
}
