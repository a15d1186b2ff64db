/* squall._xhtml, compiled: HTML escaping in one C pass.
 *
 * The pure-Python squall/_xhtml.py is the reference; this module has the
 * same two functions with the same results and errors for every input
 * (tests/test_escape.py checks both on the same values):
 *
 *   xhtml_escape(value) -> str: & < > " ' replaced by &amp; &lt; &gt;
 *     &quot; &#x27;, in a str (a subclass: the text it holds, its own methods
 *     not called) or in bytes decoded as UTF-8; always a plain str.
 *   escape_value(value, other) -> str: xhtml_escape of an exact str, str()
 *     of an exact int, other(value) for anything else (templates' values).
 *
 * A str is scanned once to size the result (nothing to escape: the same
 * object back), then copied once with the entities put in, in the string's
 * own storage width (1, 2 or 4 bytes a character), so lone surrogates and
 * characters outside the BMP are copied as they are. The str of an int
 * below 1024 is kept after its first use.
 *
 * Only CPython's public API. It needs the GIL (Py_mod_gil): the kept strs
 * of small ints are a table that calls fill without a lock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Extra characters each escaped character adds (entity length - 1). */
static unsigned char extra_for[128];

static void init_tables(void) {
    extra_for['&'] = 4;  /* &amp; */
    extra_for['<'] = 3;  /* &lt; */
    extra_for['>'] = 3;  /* &gt; */
    extra_for['"'] = 5;  /* &quot; */
    extra_for['\''] = 5; /* &#x27; */
}

#define COUNT_EXTRA(TYPE)                                        \
    do {                                                         \
        const TYPE *p = (const TYPE *)data;                      \
        for (Py_ssize_t i = 0; i < n; i++) {                     \
            Py_UCS4 c = p[i];                                    \
            if (c < 128) extra += extra_for[c];                  \
        }                                                        \
    } while (0)

#define PUT(TYPE, LITERAL)                                       \
    do {                                                         \
        const char *e = LITERAL;                                 \
        while (*e) *q++ = (TYPE)(unsigned char)*e++;             \
    } while (0)

#define COPY_ESCAPED(TYPE)                                       \
    do {                                                         \
        const TYPE *p = (const TYPE *)data;                      \
        TYPE *q = (TYPE *)PyUnicode_DATA(out);                   \
        for (Py_ssize_t i = 0; i < n; i++) {                     \
            TYPE c = p[i];                                       \
            if (c >= 128 || !extra_for[c]) {                     \
                *q++ = c;                                        \
                continue;                                        \
            }                                                    \
            switch (c) {                                         \
            case '&': PUT(TYPE, "&amp;"); break;                 \
            case '<': PUT(TYPE, "&lt;"); break;                  \
            case '>': PUT(TYPE, "&gt;"); break;                  \
            case '"': PUT(TYPE, "&quot;"); break;                \
            default: PUT(TYPE, "&#x27;"); break;                 \
            }                                                    \
        }                                                        \
    } while (0)

/* The escaped text of a str (exact or a subclass); a new reference. */
static PyObject *escape_str(PyObject *text) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t extra = 0;
    switch (kind) {
    case PyUnicode_1BYTE_KIND: COUNT_EXTRA(Py_UCS1); break;
    case PyUnicode_2BYTE_KIND: COUNT_EXTRA(Py_UCS2); break;
    default: COUNT_EXTRA(Py_UCS4); break;
    }
    if (extra == 0) {
        if (PyUnicode_CheckExact(text)) {
            Py_INCREF(text);
            return text;
        }
        /* The whole of a subclass: a plain copy (as str.__str__ gives). */
        return PyUnicode_Substring(text, 0, n);
    }
    if (n > PY_SSIZE_T_MAX - extra) return PyErr_NoMemory();
    /* Only ASCII is added: the widest character, hence the storage width,
     * stays the input's. */
    PyObject *out = PyUnicode_New(n + extra, PyUnicode_MAX_CHAR_VALUE(text));
    if (out == NULL) return NULL;
    switch (kind) {
    case PyUnicode_1BYTE_KIND: COPY_ESCAPED(Py_UCS1); break;
    case PyUnicode_2BYTE_KIND: COPY_ESCAPED(Py_UCS2); break;
    default: COPY_ESCAPED(Py_UCS4); break;
    }
    return out;
}

static PyObject *str_value; /* "value", the parameter's name */

static PyObject *xhtml_escape(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    (void)module;
    /* One argument, by position or as value=...: the Python signature. */
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw != 1 || (nkw == 1 && PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0),
                                                           str_value) != 0)) {
        if (PyErr_Occurred()) return NULL;
        return PyErr_Format(PyExc_TypeError,
                            "xhtml_escape() takes exactly one argument, value");
    }
    PyObject *value = args[0];
    if (PyUnicode_Check(value)) return escape_str(value);
    if (PyBytes_Check(value)) {
        PyObject *text = PyUnicode_DecodeUTF8(
            PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), NULL);
        if (text == NULL) return NULL;
        PyObject *out = escape_str(text);
        Py_DECREF(text);
        return out;
    }
    PyObject *name = PyType_GetName(Py_TYPE(value));
    if (name == NULL) return NULL;
    PyErr_Format(PyExc_TypeError, "xhtml_escape() needs str or bytes, not %U", name);
    Py_DECREF(name);
    return NULL;
}

/* The digits of the small non-negative ints (ids, counts, page numbers),
 * made on first use and kept: str() of an int costs more than the lookup. */
#define SMALL_INTS 1024
static PyObject *small_int_str[SMALL_INTS];

static PyObject *int_str(PyObject *value) {
    int overflow;
    long n = PyLong_AsLongAndOverflow(value, &overflow);
    if (overflow || n < 0 || n >= SMALL_INTS) return PyObject_Str(value);
    PyObject *text = small_int_str[n];
    if (text == NULL) {
        text = PyObject_Str(value);
        if (text == NULL) return NULL;
        small_int_str[n] = text;
    }
    Py_INCREF(text);
    return text;
}

static PyObject *escape_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError,
                            "escape_value() takes 2 positional arguments but %zd were given",
                            nargs);
    }
    PyObject *value = args[0];
    if (PyUnicode_CheckExact(value)) return escape_str(value);
    if (PyLong_CheckExact(value)) return int_str(value);
    return PyObject_CallOneArg(args[1], value);
}

static PyMethodDef methods[] = {
    {"xhtml_escape", (PyCFunction)(void (*)(void))xhtml_escape, METH_FASTCALL | METH_KEYWORDS,
     "xhtml_escape($module, /, value)\n--\n\n"
     "Escape value for use in HTML or XML text and attribute values.\n\n"
     "Replaces &, <, >, \" and '. Bytes are decoded as UTF-8 first. The result\n"
     "is always a plain str."},
    {"escape_value", (PyCFunction)(void (*)(void))escape_value, METH_FASTCALL,
     "escape_value($module, value, other, /)\n--\n\n"
     "A template value as escaped text: xhtml_escape of an exact str, the\n"
     "digits of an exact int, other(value) for anything else."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
    if (str_value == NULL) {
        init_tables();
        str_value = PyUnicode_InternFromString("value");
        if (str_value == NULL) return -1;
    }
    PyObject *names = Py_BuildValue("[ss]", "escape_value", "xhtml_escape");
    if (names == NULL) return -1;
    if (PyModule_AddObject(module, "__all__", names) < 0) {
        Py_DECREF(names);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* The tables and cached objects are the process's, not a module's. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Needs the GIL: the kept strs of small ints are a table that
     * calls fill without a lock. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._xhtml",
    "HTML escaping in C (speedups/c/xhtml.c); squall/_xhtml.py is the reference.", 0,
    methods, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__xhtml(void) { return PyModuleDef_Init(&module_def); }
