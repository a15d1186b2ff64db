/* squall._typetags, compiled: has any of these classes changed?
 *
 * CPython gives every class a version tag (tp_version_tag) for its attribute
 * cache. Setting or deleting an attribute of a class, or assigning its
 * __bases__, drops the tag of that class and of every subclass
 * (PyType_Modified); the next attribute lookup gives it a fresh number from a
 * counter that only grows. A tag of 0 means "none yet": it never matches.
 *
 * version_tags(types) returns the classes' tags as bytes (four a class);
 * tags_hold(types, tags) answers, without reading any attribute, whether
 * every class still has the tag it had then. True means that no attribute
 * of any of them, or of any class it inherits from, has been set or deleted
 * since; False that one may have been. squall/_typetags.py is the pure
 * build's version, which cannot read tags and always answers False; see it
 * for the contract, and squall/log.py for the use.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int check_types(PyObject *types) {
    if (!PyTuple_CheckExact(types)) {
        PyErr_Format(PyExc_TypeError, "types must be a tuple of classes, not %.100s",
                     Py_TYPE(types)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(types);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(types, i);
        if (!PyType_Check(t)) {
            PyErr_Format(PyExc_TypeError, "types[%zd] is not a class but %.100s", i,
                         Py_TYPE(t)->tp_name);
            return -1;
        }
    }
    return 0;
}

static uint32_t tag_of(PyObject *t) {
    return (uint32_t)((PyTypeObject *)t)->tp_version_tag;
}

static PyObject *version_tags(PyObject *Py_UNUSED(self), PyObject *types) {
    if (check_types(types) < 0) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(types);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(uint32_t));
    if (out == NULL) return NULL;
    char *buf = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t tag = tag_of(PyTuple_GET_ITEM(types, i));
        memcpy(buf + i * sizeof(uint32_t), &tag, sizeof(uint32_t));
    }
    return out;
}

static PyObject *tags_hold(PyObject *Py_UNUSED(self), PyObject *const *args,
                           Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "tags_hold takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *types = args[0], *tags = args[1];
    if (!PyTuple_CheckExact(types) || !PyBytes_CheckExact(tags)) {
        PyErr_SetString(PyExc_TypeError, "tags_hold(types: tuple, tags: bytes)");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(types);
    if (PyBytes_GET_SIZE(tags) != n * (Py_ssize_t)sizeof(uint32_t)) Py_RETURN_FALSE;
    const char *buf = PyBytes_AS_STRING(tags);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(types, i);
        uint32_t saved;
        memcpy(&saved, buf + i * sizeof(uint32_t), sizeof(uint32_t));
        if (!PyType_Check(t) || saved == 0 || tag_of(t) != saved) Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"version_tags", (PyCFunction)version_tags, METH_O,
     "version_tags(types) -> bytes\n\n"
     "The classes' version tags, for tags_hold."},
    {"tags_hold", (PyCFunction)(void (*)(void))tags_hold, METH_FASTCALL,
     "tags_hold(types, tags) -> bool\n\n"
     "True when no attribute of these classes (or of their bases) has been\n"
     "set or deleted since version_tags(types) gave tags."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._typetags",
    "Class version tags (speedups/c/typetags.c); squall/_typetags.py is the "
    "pure build's.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__typetags(void) { return PyModule_Create(&module_def); }
