/* Decode only the part of a JPEG that covers a box, at a DCT scale of 1/1, 1/2, 1/4 or 1/8 (libjpeg-turbo).
 *
 * decode_region(data, divisor, top, left, height, width) -> bytearray
 *
 * The box is in the pixels of the 1/divisor decode (whose size is ceil(size / divisor)); the result is the box's
 * height * width * 3 bytes, RGB, rows one after the other (HWC), equal to the same box cut from a full decode at
 * that scale (libjpeg's ISLOW IDCT and fancy upsampling, as simplejpeg's defaults).
 *
 * How less is decoded: rows above the box are entropy-decoded only (jpeg_skip_scanlines: no IDCT, upsampling or
 * colour conversion), rows below are not read at all (jpeg_abort_decompress), and of each row only the iMCU
 * columns that cover the box go through the IDCT (jpeg_crop_scanline). libjpeg's fancy chroma upsampling treats
 * the edges of a cropped row as the image's edges (libjpeg.txt, "Decompressing partial scanlines"), so the
 * columns asked for reach MARGIN pixels past the box on either side: the box's own pixels then see their real
 * neighbours, and equal the full decode's.
 *
 * Errors and libjpeg's warnings (corrupt or truncated data) raise ValueError, as simplejpeg's strict mode does;
 * the library reports them through longjmp to the setjmp below, never by exiting. The GIL is released while
 * libjpeg works.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#ifndef MARGIN
#define MARGIN 2
#endif

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} ErrorManager;

static void raise_error(j_common_ptr cinfo) {
    ErrorManager *err = (ErrorManager *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

static void emit_message(j_common_ptr cinfo, int level) {
    if (level < 0) /* a warning: corrupt data that libjpeg would decode around */
        raise_error(cinfo);
}

static PyObject *decode_region(PyObject *self, PyObject *args) {
    Py_buffer data;
    int divisor, top, left, height, width;
    if (!PyArg_ParseTuple(args, "y*iiiii:decode_region", &data, &divisor, &top, &left, &height, &width))
        return NULL;
    if (!(divisor == 1 || divisor == 2 || divisor == 4 || divisor == 8) || top < 0 || left < 0 || height <= 0 ||
        width <= 0) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "divisor must be 1, 2, 4 or 8 and the box non-empty");
        return NULL;
    }

    struct jpeg_decompress_struct cinfo;
    ErrorManager err;
    JSAMPROW rows[16];
    JDIMENSION x0, region_width, done_rows = 0;
    size_t stride, skip, row_bytes = (size_t)width * 3;
    unsigned char *buffer;
    int bad_box = 0, unsupported = 0;
    /* changed after setjmp and read after a longjmp to it */
    PyObject *volatile out = NULL;
    PyThreadState *volatile thread = PyEval_SaveThread();

    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = raise_error;
    err.pub.emit_message = emit_message;
    err.message[0] = '\0';
    jpeg_create_decompress(&cinfo);
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        PyEval_RestoreThread(thread);
        PyBuffer_Release(&data);
        Py_XDECREF(out);
        PyErr_Format(PyExc_ValueError, "JPEG: %s", err.message);
        return NULL;
    }
    jpeg_mem_src(&cinfo, (const unsigned char *)data.buf, (unsigned long)data.len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_RGB &&
        cinfo.jpeg_color_space != JCS_GRAYSCALE) {
        unsupported = 1;
        goto done;
    }
    cinfo.out_color_space = JCS_RGB;
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)divisor;
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_calc_output_dimensions(&cinfo);
    if ((JDIMENSION)top + (JDIMENSION)height > cinfo.output_height ||
        (JDIMENSION)left + (JDIMENSION)width > cinfo.output_width) {
        bad_box = 1;
        goto done;
    }
    jpeg_start_decompress(&cinfo);
    x0 = left > MARGIN ? (JDIMENSION)(left - MARGIN) : 0;
    region_width = (JDIMENSION)(left + width + MARGIN);
    if (region_width > cinfo.output_width)
        region_width = cinfo.output_width;
    region_width -= x0;
    if (region_width < cinfo.output_width) /* moves x0 left to an iMCU boundary, widens region_width */
        jpeg_crop_scanline(&cinfo, &x0, &region_width);
    else
        x0 = 0;
    stride = (size_t)cinfo.output_width * 3; /* the cropped row's width */
    /* decoded straight into the result, a fresh bytearray no other thread sees until it is returned */
    PyEval_RestoreThread(thread);
    out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(stride * (size_t)height));
    thread = PyEval_SaveThread();
    if (out == NULL)
        goto done;
    buffer = (unsigned char *)PyByteArray_AS_STRING(out);
    if (top > 0 && jpeg_skip_scanlines(&cinfo, (JDIMENSION)top) != (JDIMENSION)top)
        ERREXIT(&cinfo, JERR_INPUT_EOF);
    while (done_rows < (JDIMENSION)height) {
        JDIMENSION n = (JDIMENSION)height - done_rows;
        if (n > 16)
            n = 16;
        for (JDIMENSION i = 0; i < n; i++)
            rows[i] = buffer + (size_t)(done_rows + i) * stride;
        JDIMENSION got = jpeg_read_scanlines(&cinfo, rows, n);
        if (got == 0)
            ERREXIT(&cinfo, JERR_INPUT_EOF);
        done_rows += got;
    }
    /* keep the box's columns: each row moves to a lower (or the same) address, so in order is safe */
    skip = (size_t)(left - (int)x0) * 3;
    for (size_t i = 0; i < (size_t)height; i++)
        memmove(buffer + i * row_bytes, buffer + i * stride + skip, row_bytes);
done: /* destroying also ends a decompression stopped after the box's last row */
    jpeg_destroy_decompress(&cinfo);
    PyEval_RestoreThread(thread);
    PyBuffer_Release(&data);
    if (out == NULL) {
        if (unsupported || bad_box)
            PyErr_SetString(PyExc_ValueError, unsupported ? "JPEG: colour space other than YCbCr, RGB or grey"
                                                      : "box outside the scaled image");
        return NULL;
    }
    if (PyByteArray_Resize(out, (Py_ssize_t)height * width * 3) < 0) { /* shrinks in place */
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"decode_region", decode_region, METH_VARARGS,
     "decode_region(data, divisor, top, left, height, width) -> bytearray: the box (in pixels of the 1/divisor "
     "decode) as height * width * 3 RGB bytes; ValueError for corrupt data or a box outside the image."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpeg_region", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jpeg_region(void) { return PyModule_Create(&module); }
