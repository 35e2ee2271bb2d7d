/* The PNG and JPEG decoders, as a posted image reaches them: probed,
 * decoded within limits, and fitted to a gray and an RGB model input.
 * Smaller limits than the server's defaults keep each run quick; the
 * checks against them are the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const image_limits lim = {.max_side = 2048, .max_pixels = (int64_t)1 << 20};
    char err[512] = "";
    image_info info;
    moda_status probed = image_probe(data, size, &lim, &info, err, sizeof err);
    image img = {0};
    moda_status s = image_decode(data, size, &lim, &img, err, sizeof err);
    if (s != MODA_OK) {
        if (!err[0] || img.pixels) abort();
        return 0;
    }
    /* A decoded image has passed its probe and matches what it said. */
    if (probed != MODA_OK || img.w != info.width || img.h != info.height || img.c != info.channels ||
        (img.c != 1 && img.c != 3) || img.w > lim.max_side || img.h > lim.max_side)
        abort();
    image gray = {0}, rgb = {0};
    if (image_fit(&img, 1, 28, 28, &gray) != MODA_OK || image_fit(&img, 3, 32, 32, &rgb) != MODA_OK) abort();
    image_free(&gray);
    image_free(&rgb);
    image_free(&img);
    return 0;
}
