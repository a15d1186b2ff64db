/* squall._h2._framing, compiled: an HTTP/2 frame, header and payload, in one bytes.
 *
 * squall/_h2/_framing.py is the reference: frame() here gives the same
 * bytes, and refuses an argument that is wrong with the same exception (a
 * ValueError with the same message; tests/h2/test_framing.py runs chosen
 * cases and random ones on both). Every frame a connection sends is made
 * by it, two per response (HEADERS, DATA): the reference packs the header
 * with struct and concatenates (two objects, the payload copied into the
 * second), this writes header and payload into one bytes of the right size.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* An int argument's value if it lies in [0, limit]; -1 with *bad = 1 if it
 * is an int outside it, -1 with TypeError set if it is no int. */
static long long field(PyObject *value, long long limit, int *bad) {
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "an HTTP/2 frame's type, flags and stream are ints, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow != 0 || v < 0 || v > limit) {
        *bad = 1;
        return -1;
    }
    return v;
}

static PyObject *frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "frame() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    /* In the reference's order: the payload's length, the three ints, the
     * payload's size. */
    Py_buffer view;
    if (PyObject_GetBuffer(args[3], &view, PyBUF_SIMPLE) < 0) return NULL;
    int bad = 0;
    long long kind = field(args[0], 0xFF, &bad);
    long long flags = kind < 0 ? -1 : field(args[1], 0xFF, &bad);
    long long stream_id = flags < 0 ? -1 : field(args[2], 0xFFFFFFFFLL, &bad);
    if (stream_id < 0) {
        PyBuffer_Release(&view);
        if (bad)
            PyErr_Format(PyExc_ValueError, "no HTTP/2 frame has type %R, flags %R, stream %R",
                         args[0], args[1], args[2]);
        return NULL;
    }
    Py_ssize_t n = view.len;
    if (n > 0xFFFFFF) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError,
                     "an HTTP/2 frame's payload is at most 16777215 bytes, not %zd", n);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, 9 + n);
    if (out != NULL) {
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
        p[0] = (unsigned char)(n >> 16);
        p[1] = (unsigned char)(n >> 8);
        p[2] = (unsigned char)n;
        p[3] = (unsigned char)kind;
        p[4] = (unsigned char)flags;
        p[5] = (unsigned char)(stream_id >> 24);
        p[6] = (unsigned char)(stream_id >> 16);
        p[7] = (unsigned char)(stream_id >> 8);
        p[8] = (unsigned char)stream_id;
        if (n) memcpy(p + 9, view.buf, (size_t)n);
    }
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"frame", (PyCFunction)(void (*)(void))frame, METH_FASTCALL,
     "frame(kind, flags, stream_id, payload) -> bytes: the 9-octet header "
     "(RFC 9113 section 4.1) and the payload."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "squall._h2._framing", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__framing(void) {
    PyObject *module = PyModule_Create(&moduledef);
    if (module == NULL) return NULL;
    PyObject *all = Py_BuildValue("[s]", "frame");
    if (all == NULL || PyModule_AddObject(module, "__all__", all) < 0) {
        Py_XDECREF(all);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
