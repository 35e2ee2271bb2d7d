/* JPEG decoding with libjpeg(-turbo) from memory. libjpeg's default error
 * handler exits the process; ours formats the message and jumps back to
 * image_jpeg_read. Its "corrupt data" warnings (a truncated file among
 * them: the source then inserts a fake end marker and decoding would go
 * on with grey) are errors here too. The state that must survive the jump
 * lives on the heap (jpeg_ctx). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "fileio.h"
#include "image_codec.h"

/* A progressive file may hold any number of scans, each a pass over the
 * whole image: bound them against a file that is small but slow. */
#define JPEG_MAX_SCANS 500

typedef struct jpeg_ctx {
    struct jpeg_error_mgr err; /* first: libjpeg hands our callbacks a pointer to it */
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    uint8_t *row;
    char msg[JMSG_LENGTH_MAX + 32];
} jpeg_ctx;

static void on_error(j_common_ptr ci) {
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    char text[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, text);
    snprintf(c->msg, sizeof c->msg, "%s", text);
    longjmp(c->jump, 1);
}

static void on_message(j_common_ptr ci, int level) {
    if (level < 0) on_error(ci); /* a warning: the data are corrupt */
}

static void on_progress(j_common_ptr ci) {
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    if (ci->is_decompressor && ((j_decompress_ptr)ci)->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(c->msg, sizeof c->msg, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(c->jump, 1);
    }
}

/* Everything that may call on_error, after the jump target is set. */
static moda_status read_jpeg(jpeg_ctx *c, const uint8_t *data, size_t len, const image_limits *lim,
                             image_info *info, image *out, char *err, size_t errlen) {
    j_decompress_ptr ci = &c->cinfo;
    jpeg_create_decompress(ci);
    ci->progress = &c->progress;
    jpeg_mem_src(ci, data, (unsigned long)len);
    jpeg_read_header(ci, TRUE);
    info->format = IMAGE_FORMAT_JPEG;
    info->width = (int)ci->image_width;
    info->height = (int)ci->image_height;
    J_COLOR_SPACE space = ci->jpeg_color_space;
    if (space == JCS_GRAYSCALE) info->channels = 1;
    else if (space == JCS_YCbCr || space == JCS_RGB) info->channels = 3;
    else
        return fileio_fail(err, errlen, MODA_ERR_UNSUPPORTED, "JPEG: colour space %d (CMYK or YCCK) is not supported",
                           (int)space);
    MODA_TRY(image_check_limits(info, lim, err, errlen));
    if (!out) return MODA_OK;

    ci->out_color_space = info->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(ci);
    if ((int)ci->output_width != info->width || (int)ci->output_height != info->height ||
        ci->output_components != info->channels)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "JPEG: unexpected output layout");
    if (!(c->row = malloc((size_t)info->width * info->channels))) return MODA_ERR_NOMEM;
    MODA_TRY(image_alloc(out, info->channels, info->height, info->width));
    while (ci->output_scanline < ci->output_height) {
        const int y = (int)ci->output_scanline;
        JSAMPROW rows[1] = {c->row};
        if (jpeg_read_scanlines(ci, rows, 1) != 1)
            return fileio_fail(err, errlen, MODA_ERR_FORMAT, "JPEG: no data for row %d", y);
        image_store_row(out, y, c->row, info->channels);
    }
    jpeg_finish_decompress(ci); /* up to EOI: a file cut after its pixels is still truncated */
    return MODA_OK;
}

moda_status image_jpeg_read(const uint8_t *data, size_t len, const image_limits *lim, image_info *info, image *out,
                            char *err, size_t errlen) {
    jpeg_ctx *c = calloc(1, sizeof *c);
    if (!c) return MODA_ERR_NOMEM;
    c->cinfo.err = jpeg_std_error(&c->err);
    c->err.error_exit = on_error;
    c->err.emit_message = on_message;
    c->progress.progress_monitor = on_progress;
    moda_status st;
    if (setjmp(c->jump)) st = fileio_fail(err, errlen, MODA_ERR_FORMAT, "JPEG: %s", c->msg);
    else st = read_jpeg(c, data, len, lim, info, out, err, errlen);
    if (st != MODA_OK && out) image_free(out);
    jpeg_destroy_decompress(&c->cinfo); /* also after a failed create: it checks its own state */
    free(c->row);
    free(c);
    return st;
}
