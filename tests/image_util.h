/* PNG and JPEG encoders for the tests (libpng, libjpeg), writing into
 * memory, and a file writer. Header-only, like test_util.h. The pixels
 * are interleaved rows of `channels` samples, as the formats store them. */
#ifndef MODA_TEST_IMAGE_UTIL_H
#define MODA_TEST_IMAGE_UTIL_H

#include "test_util.h"

#include <png.h>
#include <jpeglib.h>

typedef struct tu_buf {
    uint8_t *data;
    size_t len, cap;
} tu_buf;

static inline void tu_buf_put(tu_buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void tu_png_write_cb(png_structp png, png_bytep data, size_t n) {
    tu_buf_put(png_get_io_ptr(png), data, n);
}

static inline void tu_png_flush_cb(png_structp png) { (void)png; }

typedef struct tu_png_opts {
    int color_type;           /* PNG_COLOR_TYPE_* */
    int bit_depth;            /* 1, 2, 4, 8 or 16 (16: big-endian pairs in pixels) */
    const png_color *palette; /* PALETTE: the entries */
    int n_palette;
    const png_byte *trns;     /* PALETTE: alpha of the first n_trns entries */
    int n_trns;
    int interlace;            /* Adam7 */
} tu_png_opts;

/* A PNG of w x h from packed rows of png_get_rowbytes bytes each. */
static inline tu_buf tu_png_encode(const uint8_t *pixels, int w, int h, const tu_png_opts *o) {
    tu_buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng could not encode the test image");
    png_set_write_fn(png, &b, tu_png_write_cb, tu_png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, o->bit_depth, o->color_type,
                 o->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (o->palette) png_set_PLTE(png, info, o->palette, o->n_palette);
    if (o->trns) png_set_tRNS(png, info, o->trns, o->n_trns, NULL);
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    const size_t rowbytes = png_get_rowbytes(png, info);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)pixels + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

/* 8-bit gray (channels 1), gray + alpha (2), RGB (3) or RGBA (4). */
static inline tu_buf tu_png8(const uint8_t *pixels, int w, int h, int channels) {
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    tu_png_opts o = {.color_type = types[channels], .bit_depth = 8};
    return tu_png_encode(pixels, w, h, &o);
}

/* A baseline JPEG of gray (1), RGB (3) or CMYK (4) pixels. */
static inline tu_buf tu_jpeg(const uint8_t *pixels, int w, int h, int channels, int quality) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)pixels + (size_t)c.next_scanline * w * channels;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    tu_buf b = {0};
    tu_buf_put(&b, out, len);
    free(out);
    return b;
}

static inline void tu_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Interleaved (h, w, c) -> planar (c, h, w). */
static inline uint8_t *tu_planar(const uint8_t *px, int w, int h, int c) {
    uint8_t *p = malloc((size_t)w * h * c);
    assert_non_null(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) p[((size_t)k * h + y) * w + x] = px[((size_t)y * w + x) * c + k];
    return p;
}

#endif
