/* PNG and JPEG images: decoding from memory into 8-bit pixels, and fitting
 * an image to a model's input by the one rule that training data from
 * folders and images posted to the server both follow.
 *
 * Pixels are planar, (c, h, w), like the datasets and the network input:
 * c = 1 (gray) or 3 (RGB). The format is found from the magic bytes, never
 * from a file name. Decoding converts what the file holds to 8-bit gray or
 * RGB: a palette expands to RGB, 16-bit samples scale to 8 bits
 * (round(v * 255 / 65535)), and alpha (an alpha channel or a tRNS chunk)
 * is composited over black, the colour of the training pipeline's
 * padding: v' = (v * a + 127) / 255 in integers.
 *
 * Limits. The width, height and width * height are checked against an
 * image_limits from the header, before any pixel buffer is allocated, so a
 * small file that claims a huge image is refused cheaply. A corrupt or
 * truncated file (libjpeg's "corrupt data" warnings included) is an error
 * with the decoder's reason; libpng's and libjpeg's own error exits are
 * replaced, so nothing aborts, exits or leaks.
 *
 * The fit rule (image_fit), to C channels and H x W:
 *   1. channels: a 1-channel target takes the luma of RGB,
 *      Y = (299 R + 587 G + 114 B + 500) / 1000 (BT.601, rounded); a
 *      3-channel target replicates gray into R, G and B;
 *   2. size: an image of H x W already is taken as it is. Otherwise it is
 *      scaled by s = max(H / h, W / w), so that it covers H x W, to
 *      round(h s) x round(w s) (at least H x W), with an antialiased
 *      triangle (bilinear) filter whose support widens by the scale when
 *      downscaling (as PIL's BILINEAR resize), and the centre H x W is
 *      cropped (offset floor((h' - H) / 2), floor((w' - W) / 2)). Values
 *      round to the nearest integer. A crop alone (one side already
 *      matching) copies pixels exactly.
 *
 * Errors: MODA_ERR_FORMAT (not a PNG or JPEG, corrupt, truncated),
 * MODA_ERR_ARG (over the limits), MODA_ERR_UNSUPPORTED (a valid file of a
 * kind not handled, e.g. CMYK JPEG), MODA_ERR_NOMEM; the message goes to
 * (err, errlen), err may be NULL. */
#ifndef MODA_IMAGE_H
#define MODA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define IMAGE_MAX_SIDE_DEFAULT 8192
#define IMAGE_MAX_PIXELS_DEFAULT ((int64_t)16 << 20)

typedef enum image_format { IMAGE_FORMAT_UNKNOWN = 0, IMAGE_FORMAT_PNG, IMAGE_FORMAT_JPEG } image_format;

typedef struct image_limits {
    int max_side;       /* width and height, each */
    int64_t max_pixels; /* width * height */
} image_limits;

typedef struct image_info {
    image_format format;
    int width, height;
    int channels; /* after decoding: 1 (gray, gray + alpha) or 3 (RGB, RGBA, palette) */
} image_info;

typedef struct image {
    uint8_t *pixels; /* (c, h, w), owned */
    int c, h, w;
} image;

/* 8192 per side and 16 M pixels. */
image_limits image_limits_default(void);

/* The format from the first bytes: PNG's 8-byte signature or JPEG's SOI
 * marker followed by a marker (FF D8 FF). */
image_format image_detect(const void *data, size_t len);
const char *image_format_name(image_format f); /* "PNG", "JPEG", "unknown" */

/* Reads the header only: format, size and decoded channel count, checked
 * against lim (NULL: the defaults). */
moda_status image_probe(const void *data, size_t len, const image_limits *lim, image_info *info, char *err,
                        size_t errlen);

/* Decodes a whole PNG or JPEG into *out (zeroed first, left empty on
 * failure). lim NULL: the defaults. */
moda_status image_decode(const void *data, size_t len, const image_limits *lim, image *out, char *err,
                         size_t errlen);

/* An image of c x h x w zeroed pixels, for tests and builders. */
moda_status image_alloc(image *img, int c, int h, int w);
/* Frees the pixels and leaves img zeroed; accepts NULL. */
void image_free(image *img);

/* *dst (zeroed first) = src fitted to channels (1 or 3) x height x width
 * by the rule above. MODA_ERR_ARG for a bad target or source. */
moda_status image_fit(const image *src, int channels, int height, int width, image *dst);

#endif
