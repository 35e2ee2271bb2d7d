/* Image bodies (PNG, JPEG): decoded by the engine and fitted to a model's
 * input by the rule its folder training data followed (image.h), at the
 * size before padding, so api_input_prepare pads and normalises them like
 * any uint8 sample. */
#include <string.h>

#include "api_internal.h"

bool api_request_is_image(const api_request *req) {
    return api_request_is_type(req, "image/png") || api_request_is_type(req, "image/jpeg");
}

int api_image_decode(const void *bytes, size_t len, image *img, api_error *e) {
    char why[API_ERROR_MSG_MAX - 32] = "";
    const image_limits lim = image_limits_default();
    moda_status st = image_decode(bytes, len, &lim, img, why, sizeof why);
    if (st == MODA_OK) return 0;
    if (st == MODA_ERR_ARG) return api_error_set(e, "image_too_large", "%s", why);
    if (st == MODA_ERR_NOMEM) return api_error_set(e, "internal", "out of memory decoding the image");
    return api_error_set(e, "invalid_image", "%s", why[0] ? why : moda_status_string(st));
}

int api_input_from_image(const api_entry_info *mi, const image *img, api_input *out, api_error *e) {
    memset(out, 0, sizeof *out);
    const int h = mi->height - 2 * mi->pad, w = mi->width - 2 * mi->pad;
    image fit;
    moda_status st = image_fit(img, mi->channels, h, w, &fit);
    if (st != MODA_OK)
        return api_error_set(e, st == MODA_ERR_NOMEM ? "internal" : "invalid_image", "cannot fit the image to %dx%dx%d: %s",
                             mi->channels, h, w, moda_status_string(st));
    *out = (api_input){.dtype = API_DTYPE_UINT8, .n = 1, .c = fit.c, .h = fit.h, .w = fit.w, .data = fit.pixels};
    return 0; /* out owns the pixels now */
}
