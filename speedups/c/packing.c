/* squall._ws._packing, compiled: an open WebSocket's upgrade fields in one string.
 *
 * squall/_ws/_packing.py is the reference: this module has the same names
 * (SEPARATOR, WORDS, CODES, pack_fields) and pack_fields gives the same
 * string, None or TypeError, in the same order of precedence, for every
 * dict (tests/ws/test_packing.py runs cases and random fields on both; a
 * name of a str subclass is written as its characters, never looked up:
 * only exact strs are, whose hash and comparison run no Python code). Every handshake packs (squall.websocket._idle.release_request):
 * mypyc's version went through a list of parts, a dict lookup per name, a
 * join and a count of the separators; this one measures the fields once,
 * refusing a separator inside a name or a value as it goes, and copies them
 * into a string of the right size.
 *
 * WORDS is squall/_ws/_words.py's table, read when the module loads, as
 * the reference reads it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *codes;     /* CODES: {word: its one-character code} */
static PyObject *separator; /* SEPARATOR: "\n" */

/* The code a field name is packed as (borrowed): its CODES entry, else the
 * name itself; NULL with *refused = 1 for a name that would read as a code
 * (one control character), NULL with an exception set on error. */
static PyObject *code_of(PyObject *name, int *refused) {
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "a field name must be a str, not %.100s",
                     Py_TYPE(name)->tp_name);
        return NULL;
    }
    if (PyUnicode_CheckExact(name)) {
        /* (An exact str's hash and comparison run no Python code.) */
        PyObject *code = PyDict_GetItemWithError(codes, name);
        if (code != NULL || PyErr_Occurred()) return code;
    }
    if (PyUnicode_GET_LENGTH(name) == 1 && PyUnicode_READ_CHAR(name, 0) < ' ') {
        *refused = 1;
        return NULL;
    }
    return name;
}

/* 1 when s holds the separator, 0 when not, -1 on error. */
static int has_separator(PyObject *s) {
    Py_ssize_t size = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND)
        return memchr(PyUnicode_1BYTE_DATA(s), '\n', (size_t)size) != NULL;
    Py_ssize_t at = PyUnicode_FindChar(s, '\n', 0, size, 1);
    if (at == -2) return -1;
    return at >= 0;
}

/* Copies all of s into packed at index at; -1 on error. */
static int copy_into(PyObject *packed, int kind, void *data, Py_ssize_t at, PyObject *s) {
    Py_ssize_t size = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_KIND(s) == kind) {
        memcpy((char *)data + at * kind, PyUnicode_DATA(s), (size_t)(size * kind));
        return 0;
    }
    return PyUnicode_CopyCharacters(packed, at, s, 0, size) < 0 ? -1 : 0;
}

/* A field as the first pass found it (borrowed: no Python code runs until
 * the second pass is over, so nothing can let them go). */
typedef struct {
    PyObject *code;
    PyObject *values;
} Field;

#define STACK_FIELDS 48

static PyObject *pack_fields(PyObject *Py_UNUSED(module), PyObject *fields) {
    if (!PyDict_Check(fields)) {
        PyErr_Format(PyExc_TypeError, "fields must be a dict, not %.100s",
                     Py_TYPE(fields)->tp_name);
        return NULL;
    }
    Field stack[STACK_FIELDS];
    Field *found = stack;
    Py_ssize_t count = PyDict_GET_SIZE(fields);
    if (count > STACK_FIELDS) {
        found = PyMem_New(Field, (size_t)count);
        if (found == NULL) return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    /* First pass: the length, the widest character, and the refusals. */
    Py_ssize_t pos = 0, length = 0, parts = 0, kept = 0;
    Py_UCS4 widest = 0x7F;
    int split = 0; /* a separator inside a name or a value: None, once all are read */
    PyObject *name, *values;
    while (PyDict_Next(fields, &pos, &name, &values)) {
        int refused = 0;
        PyObject *code = code_of(name, &refused);
        if (code == NULL) {
            if (refused) result = Py_NewRef(Py_None);
            goto done;
        }
        if (!PyList_Check(values)) {
            PyErr_Format(PyExc_TypeError, "the values of %R must be a list, not %.100s", name,
                         Py_TYPE(values)->tp_name);
            goto done;
        }
        Py_ssize_t n = PyList_GET_SIZE(values);
        if (n == 0) continue;
        if (code == name) {
            int has = has_separator(name);
            if (has < 0) goto done;
            split |= has;
            Py_UCS4 max = PyUnicode_MAX_CHAR_VALUE(name);
            if (max > widest) widest = max;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *value = PyList_GET_ITEM(values, i);
            if (!PyUnicode_Check(value)) {
                PyErr_Format(PyExc_TypeError, "a value of %R must be a str, not %.100s", name,
                             Py_TYPE(value)->tp_name);
                goto done;
            }
            int has = has_separator(value);
            if (has < 0) goto done;
            split |= has;
            Py_UCS4 max = PyUnicode_MAX_CHAR_VALUE(value);
            if (max > widest) widest = max;
            length += PyUnicode_GET_LENGTH(code) + PyUnicode_GET_LENGTH(value);
            parts += 2;
        }
        if (kept == count) {
            /* (Cannot happen: as many fields as the dict has.) */
            PyErr_SetString(PyExc_RuntimeError, "fields changed while packed");
            goto done;
        }
        found[kept].code = code;
        found[kept].values = values;
        kept++;
    }
    if (split) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (parts == 0) {
        result = PyUnicode_New(0, 0);
        goto done;
    }
    length += parts - 1;
    PyObject *packed = PyUnicode_New(length, widest);
    if (packed == NULL) goto done;
    int kind = PyUnicode_KIND(packed);
    void *data = PyUnicode_DATA(packed);
    Py_ssize_t at = 0;
    for (Py_ssize_t f = 0; f < kept; f++) {
        PyObject *code = found[f].code;
        PyObject *list = found[f].values;
        Py_ssize_t code_size = PyUnicode_GET_LENGTH(code);
        Py_ssize_t n = PyList_GET_SIZE(list);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *value = PyList_GET_ITEM(list, i);
            if (at) PyUnicode_WRITE(kind, data, at++, '\n');
            if (copy_into(packed, kind, data, at, code) < 0) goto failed;
            at += code_size;
            PyUnicode_WRITE(kind, data, at++, '\n');
            if (copy_into(packed, kind, data, at, value) < 0) goto failed;
            at += PyUnicode_GET_LENGTH(value);
        }
    }
    result = packed;
    goto done;
failed:
    Py_DECREF(packed);
done:
    if (found != stack) PyMem_Free(found);
    return result;
}

static PyMethodDef methods[] = {
    {"pack_fields", (PyCFunction)pack_fields, METH_O,
     "pack_fields(fields) -> str or None\n\n"
     "fields as one string: name (or its code), value, name, value... joined\n"
     "by SEPARATOR; None when it could not be unpacked into the same fields."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._ws._packing",
    "Header fields packed into one string (speedups/c/packing.c); "
    "squall/_ws/_packing.py is the pure build's.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__packing(void) {
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    PyObject *table = NULL;
    PyObject *shared = PyImport_ImportModule("squall._ws._words");
    if (shared == NULL) goto error;
    table = PyObject_GetAttrString(shared, "WORDS");
    Py_DECREF(shared);
    if (table == NULL) goto error;
    if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) > 32) {
        PyErr_SetString(PyExc_TypeError, "squall._ws._words.WORDS: a tuple of at most 32 names");
        goto error;
    }
    codes = PyDict_New();
    separator = PyUnicode_FromString("\n");
    if (codes == NULL || separator == NULL) goto error;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(table); i++) {
        PyObject *word = PyTuple_GET_ITEM(table, i);
        if (!PyUnicode_CheckExact(word)) {
            PyErr_SetString(PyExc_TypeError, "squall._ws._words.WORDS: names are strs");
            goto error;
        }
        if (PyUnicode_GET_LENGTH(word) == 0) continue;
        Py_UCS4 ch = (Py_UCS4)i;
        PyObject *code = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, &ch, 1);
        if (code == NULL) goto error;
        /* Keyed by the interned name: the parser's field names are, and a
         * lookup then matches by identity, without comparing characters. */
        PyObject *key = Py_NewRef(word);
        PyUnicode_InternInPlace(&key);
        int failed = PyDict_SetItem(codes, key, code);
        Py_DECREF(key);
        Py_DECREF(code);
        if (failed < 0) goto error;
    }
    PyObject *all = Py_BuildValue("[ssss]", "CODES", "SEPARATOR", "WORDS", "pack_fields");
    if (all == NULL) goto error;
    if (PyModule_AddObject(module, "__all__", all) < 0) {
        Py_DECREF(all);
        goto error;
    }
    if (PyModule_AddObjectRef(module, "WORDS", table) < 0 ||
        PyModule_AddObjectRef(module, "CODES", codes) < 0 ||
        PyModule_AddObjectRef(module, "SEPARATOR", separator) < 0)
        goto error;
    Py_DECREF(table);
    return module;
error:
    Py_XDECREF(table);
    Py_DECREF(module);
    return NULL;
}
