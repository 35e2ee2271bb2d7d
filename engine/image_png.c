/* PNG decoding with libpng from memory. libpng reports errors by calling
 * an error function that must not return: ours records the message and
 * jumps back to image_png_read, which frees everything it holds. The
 * state that must survive the jump lives on the heap (png_ctx), never in
 * a local variable changed after setjmp. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "image_codec.h"

/* Ancillary chunks (text, ICC profiles) may be compressed too: bound what
 * libpng will inflate for one, and how many it keeps. */
#define PNG_CHUNK_MALLOC_MAX ((png_alloc_size_t)8 << 20)
#define PNG_CHUNK_CACHE_MAX 128

typedef struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    png_structp png;
    png_infop info;
    uint8_t *buf;     /* decoded interleaved rows */
    png_bytep *rows;  /* (height) into buf */
    char msg[192];
} png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { /* benign: a damaged ancillary chunk */
    (void)png;
    (void)msg;
}

static void read_bytes(png_structp png, png_bytep out, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "truncated file");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

/* Everything that may call png_error, after the jump target is set. */
static moda_status read_png(png_ctx *c, const image_limits *lim, image_info *info, image *out, char *err,
                            size_t errlen) {
    png_set_read_fn(c->png, c, read_bytes);
    png_set_user_limits(c->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX); /* ours are checked below */
    png_set_chunk_malloc_max(c->png, PNG_CHUNK_MALLOC_MAX);
    png_set_chunk_cache_max(c->png, PNG_CHUNK_CACHE_MAX);
    png_read_info(c->png, c->info);
    const png_uint_32 w = png_get_image_width(c->png, c->info), h = png_get_image_height(c->png, c->info);
    const int type = png_get_color_type(c->png, c->info), depth = png_get_bit_depth(c->png, c->info);
    info->format = IMAGE_FORMAT_PNG;
    info->width = (int)w;
    info->height = (int)h;
    info->channels = type & PNG_COLOR_MASK_COLOR ? 3 : 1; /* the palette type has the colour bit */
    MODA_TRY(image_check_limits(info, lim, err, errlen));
    if (!out) return MODA_OK;

    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (png_get_valid(c->png, c->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(c->png);
    if (depth == 16) png_set_scale_16(c->png); /* (v * 255 + 32895) >> 16: rounded */
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    const int in_ch = png_get_channels(c->png, c->info);
    const size_t rowbytes = png_get_rowbytes(c->png, c->info);
    if (in_ch < 1 || in_ch > 4 || rowbytes != (size_t)w * in_ch)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "PNG: unexpected layout after conversion");
    c->buf = malloc(rowbytes * h);
    c->rows = malloc(h * sizeof *c->rows);
    if (!c->buf || !c->rows) return MODA_ERR_NOMEM;
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->buf + y * rowbytes;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, NULL); /* up to IEND: a file cut after its pixels is still truncated */
    MODA_TRY(image_alloc(out, info->channels, (int)h, (int)w));
    for (png_uint_32 y = 0; y < h; y++) image_store_row(out, (int)y, c->rows[y], in_ch);
    return MODA_OK;
}

moda_status image_png_read(const uint8_t *data, size_t len, const image_limits *lim, image_info *info, image *out,
                           char *err, size_t errlen) {
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return MODA_ERR_NOMEM;
    c->data = data;
    c->len = len;
    moda_status st = MODA_ERR_NOMEM;
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
    if (c->png) c->info = png_create_info_struct(c->png);
    if (c->png && c->info) {
        if (setjmp(png_jmpbuf(c->png))) {
            if (out) image_free(out);
            st = fileio_fail(err, errlen, MODA_ERR_FORMAT, "PNG: %s", c->msg);
        } else {
            st = read_png(c, lim, info, out, err, errlen);
        }
    }
    if (st != MODA_OK && out) image_free(out);
    png_destroy_read_struct(&c->png, &c->info, NULL); /* accepts NULLs */
    free(c->rows);
    free(c->buf);
    free(c);
    return st;
}
