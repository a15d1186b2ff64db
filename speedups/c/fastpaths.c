/* squall._fastpaths, compiled: two calls through CPython's public C API.
 *
 * The pure-Python squall/_fastpaths.py is the reference; this module has the
 * same two functions with the same results (tests/test_fastpaths.py checks
 * both on the same cases):
 *
 *   step(context, coroutine, done) -> what the coroutine yielded when None
 *     was sent into it with context entered, or done when it returned.
 *     PyIter_Send reports a return without raising StopIteration, which the
 *     Python twin must make, catch and drop.
 *   new_instance(cls) -> object.__new__(cls). For a class whose tp_new is
 *     object's, the object is made by that tp_new with an empty argument
 *     tuple made once (object.__new__ called from Python packs the class
 *     into a tuple, slices it and checks the class again); any other
 *     argument goes to object.__new__ itself, for its own answer or error.
 *
 * Only CPython's public API (PyContext_Enter and PyContext_Exit, PyIter_Send,
 * PyBaseObject_Type's tp_new). It needs the GIL (Py_mod_gil): it runs
 * Python code in a context it enters and leaves.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The empty argument tuple and object.__new__, made once. */
static PyObject *no_args = NULL;
static PyObject *object_new = NULL;

static PyObject *step(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "step() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *context = args[0], *coroutine = args[1], *done = args[2];
    if (!PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError, "step() needs a Context, not %.200s",
                     Py_TYPE(context)->tp_name);
        return NULL;
    }
    if (PyContext_Enter(context) < 0) return NULL;
    PyObject *result = NULL;
    PySendResult sent = PyIter_Send(coroutine, Py_None, &result);
    if (PyContext_Exit(context) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    if (sent == PYGEN_ERROR) return NULL;
    if (sent == PYGEN_RETURN) {
        Py_DECREF(result);
        return Py_NewRef(done);
    }
    return result;
}

static PyObject *new_instance(PyObject *Py_UNUSED(module), PyObject *cls) {
    if (PyType_Check(cls) && ((PyTypeObject *)cls)->tp_new == PyBaseObject_Type.tp_new)
        return PyBaseObject_Type.tp_new((PyTypeObject *)cls, no_args, NULL);
    return PyObject_CallOneArg(object_new, cls);
}

static PyMethodDef methods[] = {
    {"step", (PyCFunction)(void (*)(void))step, METH_FASTCALL,
     "step(context, coroutine, done, /)\n--\n\n"
     "Sends None into coroutine with context entered: what it yielded, or\n"
     "done when it returned."},
    {"new_instance", new_instance, METH_O,
     "new_instance(cls, /)\n--\n\n"
     "object.__new__(cls), made directly when cls's __new__ is object's."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
    if (no_args == NULL && (no_args = PyTuple_New(0)) == NULL) return -1;
    if (object_new == NULL &&
        (object_new = PyObject_GetAttrString((PyObject *)&PyBaseObject_Type, "__new__")) == NULL)
        return -1;
    PyObject *names = Py_BuildValue("[ss]", "new_instance", "step");
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
    /* The empty tuple and object.__new__ are the process's, not a module's. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Needs the GIL: step runs Python code in a context it enters. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._fastpaths",
    "A coroutine's step and a bare instance through the C API "
    "(speedups/c/fastpaths.c); squall/_fastpaths.py is the pure build's.",
    0, methods, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpaths(void) { return PyModuleDef_Init(&module_def); }
