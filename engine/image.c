/* Image formats by magic bytes, limits, the pixel container, and the
 * dispatch to the PNG and JPEG decoders. */
#include "image.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "image_codec.h"

static const uint8_t PNG_MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const uint8_t JPEG_MAGIC[3] = {0xff, 0xd8, 0xff};

image_limits image_limits_default(void) {
    return (image_limits){.max_side = IMAGE_MAX_SIDE_DEFAULT, .max_pixels = IMAGE_MAX_PIXELS_DEFAULT};
}

image_format image_detect(const void *data, size_t len) {
    if (!data) return IMAGE_FORMAT_UNKNOWN;
    if (len >= sizeof PNG_MAGIC && !memcmp(data, PNG_MAGIC, sizeof PNG_MAGIC)) return IMAGE_FORMAT_PNG;
    if (len >= sizeof JPEG_MAGIC && !memcmp(data, JPEG_MAGIC, sizeof JPEG_MAGIC)) return IMAGE_FORMAT_JPEG;
    return IMAGE_FORMAT_UNKNOWN;
}

const char *image_format_name(image_format f) {
    return f == IMAGE_FORMAT_PNG ? "PNG" : f == IMAGE_FORMAT_JPEG ? "JPEG" : "unknown";
}

moda_status image_check_limits(const image_info *info, const image_limits *lim, char *err, size_t errlen) {
    const int64_t pixels = (int64_t)info->width * info->height;
    if (info->width > lim->max_side || info->height > lim->max_side)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: %dx%d image is over the limit of %d pixels per side",
                           image_format_name(info->format), info->width, info->height, lim->max_side);
    if (pixels > lim->max_pixels)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: %dx%d image has %lld pixels, over the limit of %lld",
                           image_format_name(info->format), info->width, info->height, (long long)pixels,
                           (long long)lim->max_pixels);
    return MODA_OK;
}

static moda_status read_any(const void *data, size_t len, const image_limits *lim, image_info *info, image *out,
                            char *err, size_t errlen) {
    if (!data && len) return MODA_ERR_NULL;
    const image_limits def = image_limits_default();
    if (!lim) lim = &def;
    if (lim->max_side < 1 || lim->max_pixels < 1) return MODA_ERR_ARG;
    memset(info, 0, sizeof *info);
    switch (image_detect(data, len)) {
    case IMAGE_FORMAT_PNG:
        return image_png_read(data, len, lim, info, out, err, errlen);
    case IMAGE_FORMAT_JPEG:
        return image_jpeg_read(data, len, lim, info, out, err, errlen);
    default:
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "not a PNG or JPEG image (%zu bytes%s)", len,
                           len ? ", unknown signature" : "");
    }
}

moda_status image_probe(const void *data, size_t len, const image_limits *lim, image_info *info, char *err,
                        size_t errlen) {
    if (!info) return MODA_ERR_NULL;
    return read_any(data, len, lim, info, NULL, err, errlen);
}

moda_status image_decode(const void *data, size_t len, const image_limits *lim, image *out, char *err,
                         size_t errlen) {
    if (!out) return MODA_ERR_NULL;
    memset(out, 0, sizeof *out);
    image_info info;
    return read_any(data, len, lim, &info, out, err, errlen);
}

moda_status image_alloc(image *img, int c, int h, int w) {
    if (!img) return MODA_ERR_NULL;
    memset(img, 0, sizeof *img);
    if ((c != 1 && c != 3) || h < 1 || w < 1) return MODA_ERR_ARG;
    if (!(img->pixels = calloc((size_t)c * h * w, 1))) return MODA_ERR_NOMEM;
    img->c = c;
    img->h = h;
    img->w = w;
    return MODA_OK;
}

void image_free(image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* Over black: v * a / 255, rounded. */
static uint8_t over_black(unsigned v, unsigned a) { return (uint8_t)((v * a + 127) / 255); }

void image_store_row(image *out, int y, const uint8_t *row, int in_ch) {
    const size_t plane = (size_t)out->h * out->w;
    uint8_t *dst = out->pixels + (size_t)y * out->w;
    const int colour = in_ch >= 3, alpha = in_ch == 2 || in_ch == 4;
    for (int x = 0; x < out->w; x++) {
        const uint8_t *px = row + (size_t)x * in_ch;
        const unsigned a = alpha ? px[in_ch - 1] : 255;
        for (int c = 0; c < (colour ? 3 : 1); c++) dst[c * plane + x] = alpha ? over_black(px[c], a) : px[c];
    }
}
