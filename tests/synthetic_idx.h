/* A small, learnable IDX dataset for tests that train: 4 classes of 12x12
 * images whose patterns survive the crop and flip augmentation (horizontal
 * stripes, vertical stripes, a fine and a coarse checkerboard), with a
 * names file. Header-only, like test_util.h. */
#ifndef MODA_SYNTHETIC_IDX_H
#define MODA_SYNTHETIC_IDX_H

#include <sys/stat.h>

#include "test_util.h"

static inline void synth_write_be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* dir/<prefix>-images-idx3-ubyte and dir/<prefix>-labels-idx1-ubyte with n
 * samples, labels cycling 0..3. */
static inline void synth_write_idx(const char *dir, const char *prefix, int n, uint64_t seed) {
    char p[512];
    rng r;
    rng_seed(&r, seed, 1);
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *fi = fopen(p, "wb");
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fl = fopen(p, "wb");
    assert_non_null(fi);
    assert_non_null(fl);
    synth_write_be32(fi, 0x803);
    synth_write_be32(fi, (uint32_t)n);
    synth_write_be32(fi, 12);
    synth_write_be32(fi, 12);
    synth_write_be32(fl, 0x801);
    synth_write_be32(fl, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(i % 4);
        fwrite(&c, 1, 1, fl);
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 12; x++) {
                int on = c == 0   ? y % 2 == 0
                         : c == 1 ? x % 2 == 0
                         : c == 2 ? (x + y) % 2 == 0
                                  : (x / 3 + y / 3) % 2 == 0;
                float v = 40 + 30 * rng_normal(&r) + (on ? 150 : 0);
                unsigned char px = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                fwrite(&px, 1, 1, fi);
            }
    }
    fclose(fi);
    fclose(fl);
}

/* dir/names.txt with the four class names, one per line. */
static inline void synth_write_names(const char *dir, const char *const names[4]) {
    char p[512];
    snprintf(p, sizeof p, "%s/names.txt", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int k = 0; k < 4; k++) fprintf(f, "%s\n", names[k]);
    fclose(f);
}

/* root/data holding n_train training and n_test test samples and names.txt;
 * 0 on success, for a cmocka setup's return value. */
static inline int synth_make_data(const char *root, int n_train, int n_test) {
    char d[400]; /* leaves room for the file names appended to it */
    snprintf(d, sizeof d, "%.380s/data", root);
    if (mkdir(d, 0755) != 0) return -1;
    synth_write_idx(d, "train", n_train, 1);
    synth_write_idx(d, "t10k", n_test, 2);
    synth_write_names(d, (const char *const[]){"h-stripes", "v-stripes", "fine-check", "coarse-check"});
    return 0;
}

/* rm -rf root, for a teardown; 0 on success. */
static inline int synth_remove_tree(const char *root) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
