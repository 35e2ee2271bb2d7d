/* Image decoding and fitting (engine/image.h): round trips through libpng
 * and libjpeg in every colour type, alpha over black, 16-bit scaling, the
 * fit rule against hand-computed values, corrupt and truncated files at
 * every length, and the size limits checked from the header. */
#include "image_util.h"

#include <zlib.h>

#include "image.h"

/* Decodes b and checks the result's shape. */
static image decode_ok(const tu_buf *b, int c, int h, int w) {
    image img;
    char err[256] = "";
    moda_status st = image_decode(b->data, b->len, NULL, &img, err, sizeof err);
    if (st != MODA_OK) fail_msg("decode: %s (%s)", moda_status_string(st), err);
    assert_int_equal(img.c, c);
    assert_int_equal(img.h, h);
    assert_int_equal(img.w, w);
    return img;
}

static uint8_t *seq_pixels(size_t n, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 3);
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng_below(&r, 256);
    return p;
}

static uint8_t over_black(unsigned v, unsigned a) { return (uint8_t)((v * a + 127) / 255); }

/* ---- formats ---------------------------------------------------------------- */

static void test_detect(void **state) {
    (void)state;
    const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, jpg[3] = {0xff, 0xd8, 0xff};
    assert_int_equal(image_detect(png, 8), IMAGE_FORMAT_PNG);
    assert_int_equal(image_detect(png, 7), IMAGE_FORMAT_UNKNOWN);
    assert_int_equal(image_detect(jpg, 3), IMAGE_FORMAT_JPEG);
    assert_int_equal(image_detect("GIF89a", 6), IMAGE_FORMAT_UNKNOWN);
    assert_int_equal(image_detect(NULL, 0), IMAGE_FORMAT_UNKNOWN);
    assert_string_equal(image_format_name(IMAGE_FORMAT_JPEG), "JPEG");
    image img;
    char err[256] = "";
    assert_int_equal(image_decode("GIF89a....", 10, NULL, &img, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "not a PNG or JPEG"));
    assert_null(img.pixels);
    assert_int_equal(image_decode(NULL, 0, NULL, &img, err, sizeof err), MODA_ERR_FORMAT);
}

/* Gray and RGB: exact, planar, in any size; interlaced too. */
static void test_png_gray_rgb_exact(void **state) {
    (void)state;
    const int w = 7, h = 5;
    for (int c = 1; c <= 3; c += 2)
        for (int interlace = 0; interlace < 2; interlace++) {
            uint8_t *px = seq_pixels((size_t)w * h * c, 10 + c);
            tu_png_opts o = {.color_type = c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, .bit_depth = 8,
                             .interlace = interlace};
            tu_buf b = tu_png_encode(px, w, h, &o);
            image img = decode_ok(&b, c, h, w);
            uint8_t *want = tu_planar(px, w, h, c);
            assert_memory_equal(img.pixels, want, (size_t)w * h * c);
            image_info info;
            assert_int_equal(image_probe(b.data, b.len, NULL, &info, NULL, 0), MODA_OK);
            assert_int_equal(info.format, IMAGE_FORMAT_PNG);
            assert_int_equal(info.width, w);
            assert_int_equal(info.height, h);
            assert_int_equal(info.channels, c);
            image_free(&img);
            image_free(&img); /* twice: it was zeroed */
            image_free(NULL);
            free(want);
            free(b.data);
            free(px);
        }
}

/* Gray + alpha and RGBA: composited over black, (v a + 127) / 255. */
static void test_png_alpha_over_black(void **state) {
    (void)state;
    const uint8_t ga[] = {200, 255, 200, 128, 200, 0, 17, 51};
    tu_buf b = tu_png8(ga, 4, 1, 2);
    image img = decode_ok(&b, 1, 1, 4);
    const uint8_t want_ga[] = {200, over_black(200, 128), 0, over_black(17, 51)};
    assert_int_equal(want_ga[1], 100); /* 200 * 128 / 255 = 100.4 */
    assert_memory_equal(img.pixels, want_ga, 4);
    image_free(&img);
    free(b.data);

    const uint8_t rgba[] = {10, 20, 30, 255, 255, 128, 0, 64};
    b = tu_png8(rgba, 2, 1, 4);
    img = decode_ok(&b, 3, 1, 2);
    const uint8_t want_rgba[] = {10, over_black(255, 64), 20, over_black(128, 64), 30, 0}; /* planar R, G, B */
    assert_memory_equal(img.pixels, want_rgba, 6);
    image_free(&img);
    free(b.data);
}

/* A palette expands to RGB; tRNS alpha composites over black. */
static void test_png_palette(void **state) {
    (void)state;
    const png_color pal[3] = {{255, 0, 0}, {0, 128, 255}, {40, 80, 120}};
    const png_byte trns[1] = {102}; /* entry 0 is 40% opaque */
    const uint8_t idx[6] = {0, 1, 2, 2, 1, 0};
    tu_png_opts o = {.color_type = PNG_COLOR_TYPE_PALETTE, .bit_depth = 8, .palette = pal, .n_palette = 3};
    tu_buf b = tu_png_encode(idx, 3, 2, &o);
    image img = decode_ok(&b, 3, 2, 3);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(img.pixels[i], pal[idx[i]].red);
        assert_int_equal(img.pixels[6 + i], pal[idx[i]].green);
        assert_int_equal(img.pixels[12 + i], pal[idx[i]].blue);
    }
    image_free(&img);
    free(b.data);

    o.trns = trns;
    o.n_trns = 1;
    b = tu_png_encode(idx, 3, 2, &o);
    img = decode_ok(&b, 3, 2, 3);
    assert_int_equal(img.pixels[0], over_black(255, 102)); /* R of entry 0 */
    assert_int_equal(img.pixels[1], 0);                    /* R of entry 1, opaque */
    assert_int_equal(img.pixels[6 + 1], 128);              /* G of entry 1 */
    image_free(&img);
    free(b.data);
}

/* 16-bit samples scale to round(v * 255 / 65535); 1-bit gray to 0/255. */
static void test_png_16bit_and_low_depth(void **state) {
    (void)state;
    const uint16_t v[4] = {0, 0x8080, 0x80ff, 65535};
    uint8_t be[8];
    for (int i = 0; i < 4; i++) {
        be[2 * i] = (uint8_t)(v[i] >> 8);
        be[2 * i + 1] = (uint8_t)(v[i] & 0xff);
    }
    tu_png_opts o = {.color_type = PNG_COLOR_TYPE_GRAY, .bit_depth = 16};
    tu_buf b = tu_png_encode(be, 4, 1, &o);
    image img = decode_ok(&b, 1, 1, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(img.pixels[i], (int)lround(v[i] * 255.0 / 65535.0));
    image_free(&img);
    free(b.data);

    /* 16-bit RGB, one pixel. */
    const uint8_t rgb16[6] = {0xff, 0xff, 0x80, 0x80, 0x00, 0x00};
    o.color_type = PNG_COLOR_TYPE_RGB;
    b = tu_png_encode(rgb16, 1, 1, &o);
    img = decode_ok(&b, 3, 1, 1);
    assert_int_equal(img.pixels[0], 255);
    assert_int_equal(img.pixels[1], 128);
    assert_int_equal(img.pixels[2], 0);
    image_free(&img);
    free(b.data);

    const uint8_t bits[1] = {0xA0}; /* 1, 0, 1, 0 in the high bits */
    o = (tu_png_opts){.color_type = PNG_COLOR_TYPE_GRAY, .bit_depth = 1};
    b = tu_png_encode(bits, 4, 1, &o);
    img = decode_ok(&b, 1, 1, 4);
    const uint8_t want[4] = {255, 0, 255, 0};
    assert_memory_equal(img.pixels, want, 4);
    image_free(&img);
    free(b.data);
}

/* A smooth image survives JPEG at quality 95 within a few levels. */
static void test_jpeg_round_trip(void **state) {
    (void)state;
    const int w = 24, h = 16;
    for (int c = 1; c <= 3; c += 2) {
        uint8_t *px = malloc((size_t)w * h * c);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) px[((size_t)y * w + x) * c + k] = (uint8_t)(20 + 4 * x + 3 * y + 30 * k);
        tu_buf b = tu_jpeg(px, w, h, c, 95);
        assert_int_equal(image_detect(b.data, b.len), IMAGE_FORMAT_JPEG);
        image_info info;
        assert_int_equal(image_probe(b.data, b.len, NULL, &info, NULL, 0), MODA_OK);
        assert_int_equal(info.format, IMAGE_FORMAT_JPEG);
        assert_int_equal(info.channels, c);
        image img = decode_ok(&b, c, h, w);
        uint8_t *want = tu_planar(px, w, h, c);
        int worst = 0;
        for (int i = 0; i < w * h * c; i++) {
            int d = abs((int)img.pixels[i] - (int)want[i]);
            if (d > worst) worst = d;
        }
        if (worst > 6) fail_msg("JPEG %d channels: a pixel is %d levels off", c, worst);
        image_free(&img);
        free(want);
        free(b.data);
        free(px);
    }
}

static void test_jpeg_cmyk_unsupported(void **state) {
    (void)state;
    uint8_t px[4 * 8 * 8];
    memset(px, 100, sizeof px);
    tu_buf b = tu_jpeg(px, 8, 8, 4, 90);
    image img;
    char err[256] = "";
    assert_int_equal(image_decode(b.data, b.len, NULL, &img, err, sizeof err), MODA_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "CMYK"));
    assert_null(img.pixels);
    free(b.data);
}

/* ---- damaged files ---------------------------------------------------------- */

/* Every proper prefix of a valid file is an error with a message: never a
 * crash, a leak (ASan) or an image. */
static void expect_every_truncation_fails(const tu_buf *b, const char *prefix) {
    for (size_t n = 0; n < b->len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exactly n bytes: ASan sees any overread */
        memcpy(cut, b->data, n);
        image img;
        char err[256] = "";
        moda_status st = image_decode(cut, n, NULL, &img, err, sizeof err);
        if (st == MODA_OK) fail_msg("%s cut to %zu of %zu bytes decoded", prefix, n, b->len);
        assert_null(img.pixels);
        if (!err[0]) fail_msg("%s cut to %zu bytes: no message", prefix, n);
        if (n >= 8 && strncmp(err, prefix, strlen(prefix))) fail_msg("cut to %zu: message '%s'", n, err);
        free(cut);
    }
}

static void test_truncated_files(void **state) {
    (void)state;
    uint8_t *px = seq_pixels(6 * 5 * 3, 5);
    tu_buf png = tu_png8(px, 6, 5, 3), jpg = tu_jpeg(px, 6, 5, 3, 90);
    expect_every_truncation_fails(&png, "PNG:");
    expect_every_truncation_fails(&jpg, "JPEG:");
    image img;
    char err[256] = "";
    assert_int_equal(image_decode(png.data, png.len - 1, NULL, &img, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "truncated"));
    free(png.data);
    free(jpg.data);
    free(px);
}

static void test_corrupt_files(void **state) {
    (void)state;
    uint8_t *px = seq_pixels(16 * 16, 6);
    tu_buf png = tu_png8(px, 16, 16, 1);
    image img;
    char err[256] = "";
    /* A byte of the compressed pixels (IDAT starts at 33): its CRC fails. */
    png.data[33 + 8 + 4] ^= 0x55;
    assert_int_equal(image_decode(png.data, png.len, NULL, &img, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "PNG: "));
    assert_null(img.pixels);
    /* A broken IHDR (bit depth 3). */
    png.data[33 + 8 + 4] ^= 0x55;
    png.data[24] = 3;
    assert_int_equal(image_decode(png.data, png.len, NULL, &img, err, sizeof err), MODA_ERR_FORMAT);
    free(png.data);

    /* JPEG: markers and entropy data overwritten after the header. */
    tu_buf jpg = tu_jpeg(px, 16, 16, 1, 90);
    for (size_t i = jpg.len / 2; i < jpg.len - 2; i++) jpg.data[i] = 0xff;
    assert_int_equal(image_decode(jpg.data, jpg.len, NULL, &img, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "JPEG: "));
    assert_null(img.pixels);
    /* SOI and nothing that follows makes sense. */
    const uint8_t junk[16] = {0xff, 0xd8, 0xff, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_int_equal(image_decode(junk, sizeof junk, NULL, &img, err, sizeof err), MODA_ERR_FORMAT);
    free(jpg.data);
    free(px);
}

/* ---- limits ----------------------------------------------------------------- */

static uint32_t crc_of(const uint8_t *p, size_t n) { return (uint32_t)crc32(0, p, (uInt)n); }

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A small PNG whose IHDR claims 100000 x 100000 (CRC fixed up): refused
 * from the header, as MODA_ERR_ARG with the size in the message; a decoder
 * that went on would allocate 10^10 bytes and then fail on the missing
 * pixel data with MODA_ERR_FORMAT instead. */
static void test_dimensions_over_limits(void **state) {
    (void)state;
    uint8_t px[4] = {0};
    tu_buf png = tu_png8(px, 2, 2, 1);
    put_be32(png.data + 16, 100000); /* IHDR data: width, height at 16, 20 */
    put_be32(png.data + 20, 100000);
    put_be32(png.data + 29, crc_of(png.data + 12, 17));
    image img;
    image_info info;
    char err[256] = "";
    assert_int_equal(image_decode(png.data, png.len, NULL, &img, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "100000x100000"));
    assert_non_null(strstr(err, "8192"));
    assert_null(img.pixels);
    assert_int_equal(image_probe(png.data, png.len, NULL, &info, err, sizeof err), MODA_ERR_ARG);
    assert_int_equal(info.width, 100000);
    free(png.data);

    /* Within each side but over the pixel count. */
    const image_limits lim = {.max_side = 64, .max_pixels = 100};
    uint8_t big[11 * 10] = {0};
    tu_buf ok = tu_png8(big, 10, 10, 1), over = tu_png8(big, 11, 10, 1);
    assert_int_equal(image_decode(ok.data, ok.len, &lim, &img, err, sizeof err), MODA_OK);
    image_free(&img);
    assert_int_equal(image_decode(over.data, over.len, &lim, &img, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "110 pixels"));
    free(ok.data);
    free(over.data);

    /* JPEG: the SOF0 frame header patched to 60000 x 60000. */
    uint8_t gray[64] = {0};
    tu_buf jpg = tu_jpeg(gray, 8, 8, 1, 90);
    size_t sof = 2;
    while (sof + 4 < jpg.len && !(jpg.data[sof] == 0xff && jpg.data[sof + 1] == 0xc0))
        sof += 2 + ((size_t)jpg.data[sof + 2] << 8 | jpg.data[sof + 3]);
    assert_true(sof + 9 < jpg.len);
    jpg.data[sof + 5] = jpg.data[sof + 7] = 60000 >> 8; /* height, width */
    jpg.data[sof + 6] = jpg.data[sof + 8] = 60000 & 0xff;
    assert_int_equal(image_decode(jpg.data, jpg.len, NULL, &img, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "JPEG: 60000x60000"));
    assert_null(img.pixels);
    free(jpg.data);
}

/* ---- the fit rule ----------------------------------------------------------- */

static image make_image(int c, int h, int w, const uint8_t *planar) {
    image img;
    assert_int_equal(image_alloc(&img, c, h, w), MODA_OK);
    memcpy(img.pixels, planar, (size_t)c * h * w);
    return img;
}

static void expect_fit(const image *src, int c, int h, int w, const uint8_t *want) {
    image out;
    assert_int_equal(image_fit(src, c, h, w, &out), MODA_OK);
    assert_int_equal(out.c, c);
    assert_int_equal(out.h, h);
    assert_int_equal(out.w, w);
    for (int i = 0; i < c * h * w; i++)
        if (out.pixels[i] != want[i]) fail_msg("fit to %dx%dx%d: value %d is %d, want %d", c, h, w, i, out.pixels[i], want[i]);
    image_free(&out);
}

static void test_fit_identity_and_channels(void **state) {
    (void)state;
    const uint8_t g[6] = {0, 50, 100, 150, 200, 255};
    image gray = make_image(1, 2, 3, g);
    expect_fit(&gray, 1, 2, 3, g); /* taken as it is */
    uint8_t rep[18];
    for (int c = 0; c < 3; c++) memcpy(rep + 6 * c, g, 6);
    expect_fit(&gray, 3, 2, 3, rep); /* replicated */

    /* Luma, BT.601 rounded: (299 R + 587 G + 114 B + 500) / 1000. */
    const uint8_t rgb[9] = {255, 10, 7, /* R */ 0, 200, 7, /* G */ 0, 30, 7 /* B */};
    image colour = make_image(3, 1, 3, rgb);
    const uint8_t luma[3] = {76, 124, 7}; /* 76.245, 124.31, 7 */
    expect_fit(&colour, 1, 1, 3, luma);
    expect_fit(&colour, 3, 1, 3, rgb);
    image_free(&gray);
    image_free(&colour);
}

static void test_fit_resize(void **state) {
    (void)state;
    /* 2x2 -> 1x1: the mean of the four (rounded). */
    const uint8_t sq[4] = {10, 20, 30, 41};
    image a = make_image(1, 2, 2, sq);
    const uint8_t mean[1] = {25}; /* 25.25 */
    expect_fit(&a, 1, 1, 1, mean);
    image_free(&a);

    /* 2x4 -> 1x2: along the rows the triangle widens to radius 2, which
     * weighs the columns 3,3,1 / 7 and 1,3,3 / 7 at the borders:
     * (3a + 3b + c) / 7 and (b + 3c + 3d) / 7. */
    const uint8_t blk[8] = {0, 70, 140, 210, 0, 70, 140, 210};
    image b2 = make_image(1, 2, 4, blk);
    const uint8_t down[2] = {50, 160}; /* (0 + 210 + 140) / 7 = 50, (70 + 420 + 630) / 7 = 160 */
    expect_fit(&b2, 1, 1, 2, down);
    image_free(&b2);

    /* 1x2 -> 2x4 (scale 2): the centres of output samples fall at 1/4 and
     * 3/4 between the inputs: a, (3a + b) / 4, (a + 3b) / 4, b per row. */
    const uint8_t two[2] = {0, 200};
    image u = make_image(1, 1, 2, two);
    const uint8_t up[8] = {0, 50, 150, 200, 0, 50, 150, 200};
    expect_fit(&u, 1, 2, 4, up);
    image_free(&u);
}

/* Cover then centre crop: 3x5 -> 3x3 keeps columns 1..3 exactly; 4x2 ->
 * 2x2 keeps rows 1..2. */
static void test_fit_crop_centre(void **state) {
    (void)state;
    uint8_t p[15];
    for (int i = 0; i < 15; i++) p[i] = (uint8_t)(i * 10);
    image wide = make_image(1, 3, 5, p);
    const uint8_t mid[9] = {10, 20, 30, 60, 70, 80, 110, 120, 130};
    expect_fit(&wide, 1, 3, 3, mid);
    image_free(&wide);

    const uint8_t tall_px[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    image tall = make_image(1, 4, 2, tall_px);
    const uint8_t rows12[4] = {3, 4, 5, 6};
    expect_fit(&tall, 1, 2, 2, rows12);
    image_free(&tall);

    /* 4x8 -> 2x2: s = max(1/2, 1/4) = 1/2 makes 2x4, then columns 1..2 of
     * it; a constant row pattern keeps it one-dimensional: resized column j
     * weighs source columns 2j-1 .. 2j+2 by 1, 3, 3, 1. */
    uint8_t q[32];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++) q[y * 8 + x] = (uint8_t)(x * 16);
    image qi = make_image(1, 4, 8, q);
    /* column 1: (16 + 3*32 + 3*48 + 64) / 8 = 40; column 2: (48 + 3*64 + 3*80 + 96) / 8 = 72 */
    const uint8_t want[4] = {40, 72, 40, 72};
    expect_fit(&qi, 1, 2, 2, want);
    image_free(&qi);
}

static void test_fit_errors(void **state) {
    (void)state;
    const uint8_t g[1] = {9};
    image a = make_image(1, 1, 1, g), out;
    assert_int_equal(image_fit(&a, 2, 4, 4, &out), MODA_ERR_ARG);
    assert_int_equal(image_fit(&a, 1, 0, 4, &out), MODA_ERR_ARG);
    assert_int_equal(image_fit(NULL, 1, 4, 4, &out), MODA_ERR_NULL);
    assert_null(out.pixels);
    /* 1x1 -> 3x3: every output is the one input. */
    const uint8_t nine[9] = {9, 9, 9, 9, 9, 9, 9, 9, 9};
    expect_fit(&a, 1, 3, 3, nine);
    image_free(&a);
    assert_int_equal(image_alloc(&a, 2, 1, 1), MODA_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_png_gray_rgb_exact),
        cmocka_unit_test(test_png_alpha_over_black),
        cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_16bit_and_low_depth),
        cmocka_unit_test(test_jpeg_round_trip),
        cmocka_unit_test(test_jpeg_cmyk_unsupported),
        cmocka_unit_test(test_truncated_files),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_dimensions_over_limits),
        cmocka_unit_test(test_fit_identity_and_channels),
        cmocka_unit_test(test_fit_resize),
        cmocka_unit_test(test_fit_crop_centre),
        cmocka_unit_test(test_fit_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
