/* What image.c shares with the decoders, image_png.c and image_jpeg.c: the
 * limit check and the conversion of decoded rows to planar pixels. Not
 * for use outside the engine's image code. */
#ifndef MODA_IMAGE_CODEC_H
#define MODA_IMAGE_CODEC_H

#include "image.h"

/* Each decoder reads the header into *info and checks it against lim
 * (never NULL here); with out NULL it stops there, else it decodes the
 * pixels into *out (allocated by image_alloc, freed again on failure). */
moda_status image_png_read(const uint8_t *data, size_t len, const image_limits *lim, image_info *info, image *out,
                           char *err, size_t errlen);
moda_status image_jpeg_read(const uint8_t *data, size_t len, const image_limits *lim, image_info *info, image *out,
                            char *err, size_t errlen);

/* MODA_ERR_ARG with "<format>: <w>x<h> ..." when info's size is over lim. */
moda_status image_check_limits(const image_info *info, const image_limits *lim, char *err, size_t errlen);

/* Row y of an interleaved row with in_ch channels (1 gray, 2 gray + alpha,
 * 3 RGB, 4 RGBA) into out's planes (out->c is 1 for 1 and 2, 3 for 3 and
 * 4); alpha is composited over black. */
void image_store_row(image *out, int y, const uint8_t *row, int in_ch);

#endif
