/* squall._jsonenc, compiled: JSON text of plain values in one C pass.
 *
 * The pure-Python squall/_jsonenc.py is the reference; this module has the
 * same function with the same result for every value (tests/test_jsonenc.py
 * checks both, and json.dumps, on the same values):
 *
 *   encode_plain(value) -> str | None: json.dumps(value) (ensure_ascii, the
 *     default separators ", " and ": ", NaN and the infinities as
 *     JavaScript names) with every "</" written "<\/", when value is made
 *     of None, bool, str, int and float (their subclasses too: an enum's
 *     member), and exact list, tuple and dict (str keys only), nested at
 *     most MAX_DEPTH containers deep; None otherwise.
 *
 * The standard library's C encoder pays, for each container, an entry in
 * its table of containers being encoded, a list of the dict's items and a
 * list of chunks joined at the end; for a small response that is most of its
 * cost. Here the text is written once into one growing byte buffer (the
 * output is ASCII) and copied into the str at the end. No Python code runs
 * while a value is walked (exact containers only; a str, int or float, of a
 * subclass too, is read by its stored value, as json.dumps reads it, so no
 * method of a subclass runs; numbers are written without making objects,
 * but for ints beyond 64 bits) and no container object is
 * made, so the garbage collector cannot run a finalizer that changes a
 * container under the walk: borrowed references stay valid.
 *
 * Only CPython's public API. It needs the GIL (Py_mod_gil): the walk holds
 * borrowed references to the items of lists and dicts, which another thread
 * could change under it without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 32 /* squall/_jsonenc.py's MAX_DEPTH */

/* Characters a code point below 128 takes in a JSON string: 1 as itself, 2
 * as a two-character escape, 6 as \u00XX. */
static unsigned char width_of[128];
static char short_escape[128];
static const char hex_digits[] = "0123456789abcdef";

static void init_tables(void) {
    for (int c = 0; c < 128; c++) width_of[c] = (c >= 0x20 && c < 0x7f) ? 1 : 6;
    const char *pairs = "\"\"\\\\\bb\ff\nn\rr\tt";
    for (const char *p = pairs; *p; p += 2) {
        width_of[(unsigned char)p[0]] = 2;
        short_escape[(unsigned char)p[0]] = p[1];
    }
}

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    char local[1024];
} Out;

/* Room for ``need`` more bytes; -1 with MemoryError set. */
static int reserve(Out *out, Py_ssize_t need) {
    if (need <= out->cap - out->len) return 0;
    Py_ssize_t cap = out->cap;
    while (need > cap - out->len) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *data;
    if (out->data == out->local) {
        data = PyMem_Malloc((size_t)cap);
        if (data != NULL) memcpy(data, out->local, (size_t)out->len);
    } else {
        data = PyMem_Realloc(out->data, (size_t)cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->cap = cap;
    return 0;
}

static int put(Out *out, const char *text, Py_ssize_t n) {
    if (reserve(out, n) < 0) return -1;
    memcpy(out->data + out->len, text, (size_t)n);
    out->len += n;
    return 0;
}

#define PUT_U(q, v)                          \
    do {                                     \
        *q++ = '\\';                         \
        *q++ = 'u';                          \
        *q++ = hex_digits[((v) >> 12) & 15]; \
        *q++ = hex_digits[((v) >> 8) & 15];  \
        *q++ = hex_digits[((v) >> 4) & 15];  \
        *q++ = hex_digits[(v)&15];           \
    } while (0)

/* Pass 1: the characters the string's content takes ("</" counts one more,
 * for its backslash). */
#define MEASURE(TYPE)                                               \
    do {                                                            \
        const TYPE *p = (const TYPE *)data;                         \
        for (Py_ssize_t i = 0; i < n; i++) {                        \
            Py_UCS4 c = p[i];                                       \
            if (c < 128) {                                          \
                size += width_of[c];                                \
                if (c == '/' && i > 0 && p[i - 1] == '<') size++;   \
            } else {                                                \
                size += c >= 0x10000 ? 12 : 6;                      \
            }                                                       \
        }                                                           \
    } while (0)

/* Pass 2: the content written. */
#define WRITE(TYPE)                                                   \
    do {                                                              \
        const TYPE *p = (const TYPE *)data;                           \
        for (Py_ssize_t i = 0; i < n; i++) {                          \
            Py_UCS4 c = p[i];                                         \
            if (c < 128) {                                            \
                switch (width_of[c]) {                                \
                case 1:                                               \
                    if (c == '/' && i > 0 && p[i - 1] == '<') *q++ = '\\'; \
                    *q++ = (char)c;                                   \
                    break;                                            \
                case 2:                                               \
                    *q++ = '\\';                                      \
                    *q++ = short_escape[c];                           \
                    break;                                            \
                default:                                              \
                    PUT_U(q, c);                                      \
                }                                                     \
            } else if (c >= 0x10000) {                                \
                Py_UCS4 high = 0xd800 + ((c - 0x10000) >> 10);        \
                Py_UCS4 low = 0xdc00 + ((c - 0x10000) & 0x3ff);       \
                PUT_U(q, high);                                       \
                PUT_U(q, low);                                        \
            } else {                                                  \
                PUT_U(q, c);                                          \
            }                                                         \
        }                                                             \
    } while (0)

static int put_str(Out *out, PyObject *text) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (n > (PY_SSIZE_T_MAX - 2) / 12) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t size = 2;
    switch (kind) {
    case PyUnicode_1BYTE_KIND: MEASURE(Py_UCS1); break;
    case PyUnicode_2BYTE_KIND: MEASURE(Py_UCS2); break;
    default: MEASURE(Py_UCS4); break;
    }
    if (reserve(out, size) < 0) return -1;
    char *q = out->data + out->len;
    *q++ = '"';
    if (size == n + 2) {
        /* Nothing escaped: the characters are ASCII, one byte each. */
        const Py_UCS1 *p = (const Py_UCS1 *)data;
        memcpy(q, p, (size_t)n);
        q += n;
    } else {
        switch (kind) {
        case PyUnicode_1BYTE_KIND: WRITE(Py_UCS1); break;
        case PyUnicode_2BYTE_KIND: WRITE(Py_UCS2); break;
        default: WRITE(Py_UCS4); break;
        }
    }
    *q++ = '"';
    out->len = q - out->data;
    return 0;
}

static int put_int(Out *out, PyObject *value) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (!overflow) {
        if (v == -1 && PyErr_Occurred()) return -1;
        char digits[24];
        char *end = digits + sizeof digits;
        char *p = end;
        unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        do {
            *--p = (char)('0' + m % 10);
            m /= 10;
        } while (m);
        if (v < 0) *--p = '-';
        return put(out, p, end - p);
    }
    /* int's own repr: it raises past sys.get_int_max_str_digits(). */
    PyObject *text = PyLong_Type.tp_repr(value);
    if (text == NULL) return -1;
    Py_ssize_t n;
    const char *ascii = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = ascii == NULL ? -1 : put(out, ascii, n);
    Py_DECREF(text);
    return rc;
}

static int put_float(Out *out, PyObject *value) {
    double d = PyFloat_AS_DOUBLE(value);
    if (Py_IS_NAN(d)) return put(out, "NaN", 3);
    if (Py_IS_INFINITY(d)) return d > 0 ? put(out, "Infinity", 8) : put(out, "-Infinity", 9);
    /* float's repr: the shortest digits that read back the same. */
    char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) return -1;
    int rc = put(out, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return rc;
}

/* 0: written; 1: not plain (the caller gives up); -1: an error is set. */
static int put_value(Out *out, PyObject *value, int depth) {
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type) return put_str(out, value);
    if (value == Py_None) return put(out, "null", 4);
    if (value == Py_True) return put(out, "true", 4);
    if (value == Py_False) return put(out, "false", 5);
    if (type == &PyLong_Type) return put_int(out, value);
    if (type == &PyFloat_Type) return put_float(out, value);
    if (type == &PyDict_Type) {
        if (depth == MAX_DEPTH) return 1;
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        int first = 1;
        if (put(out, "{", 1) < 0) return -1;
        while (PyDict_Next(value, &pos, &key, &item)) {
            if (!PyUnicode_Check(key)) return 1;
            if (!first && put(out, ", ", 2) < 0) return -1;
            first = 0;
            if (put_str(out, key) < 0 || put(out, ": ", 2) < 0) return -1;
            int rc = put_value(out, item, depth + 1);
            if (rc) return rc;
        }
        return put(out, "}", 1);
    }
    if (type == &PyList_Type || type == &PyTuple_Type) {
        if (depth == MAX_DEPTH) return 1;
        PyObject **items = PySequence_Fast_ITEMS(value);
        Py_ssize_t n = PySequence_Fast_GET_SIZE(value);
        if (put(out, "[", 1) < 0) return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i && put(out, ", ", 2) < 0) return -1;
            int rc = put_value(out, items[i], depth + 1);
            if (rc) return rc;
        }
        return put(out, "]", 1);
    }
    /* Subclasses, by their stored value (json.dumps calls none of their
     * methods either): a StrEnum's or an IntEnum's member, say. */
    if (PyUnicode_Check(value)) return put_str(out, value);
    if (PyLong_Check(value)) return put_int(out, value);
    if (PyFloat_Check(value)) return put_float(out, value);
    return 1;
}

static PyObject *encode_plain(PyObject *module, PyObject *value) {
    (void)module;
    Out out;
    out.data = out.local;
    out.len = 0;
    out.cap = (Py_ssize_t)sizeof out.local;
    int rc = put_value(&out, value, 0);
    PyObject *result = NULL;
    if (rc == 0) {
        result = PyUnicode_New(out.len, 127);
        if (result != NULL) memcpy(PyUnicode_1BYTE_DATA(result), out.data, (size_t)out.len);
    } else if (rc == 1) {
        result = Py_NewRef(Py_None);
    }
    if (out.data != out.local) PyMem_Free(out.data);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_plain", (PyCFunction)encode_plain, METH_O,
     "encode_plain($module, value, /)\n--\n\n"
     "json.dumps(value) with every </ written <\\/, when value is plain; None\n"
     "when it is not, for the general encoder."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
    init_tables(); /* (the same constant tables each time) */
    PyObject *names = Py_BuildValue("[ss]", "MAX_DEPTH", "encode_plain");
    if (names == NULL) return -1;
    if (PyModule_AddObject(module, "__all__", names) < 0) {
        Py_DECREF(names);
        return -1;
    }
    return PyModule_AddIntConstant(module, "MAX_DEPTH", MAX_DEPTH);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* The tables and cached objects are the process's, not a module's. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Needs the GIL: the walk holds borrowed references to the items
     * of lists and dicts, which another thread could change without it. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._jsonenc",
    "JSON text of plain values in C (speedups/c/jsonenc.c); squall/_jsonenc.py is the "
    "reference.",
    0, methods, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__jsonenc(void) { return PyModuleDef_Init(&module_def); }
