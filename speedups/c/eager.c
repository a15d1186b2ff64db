/* squall._eager_step, compiled: a coroutine's first step outside a Task (3.11).
 *
 * The pure-Python squall/_eager_step.py is the reference; this module has
 * its one public function with the same outcome for every coroutine
 * (tests/test_eager.py runs its tests on both):
 *
 *   start(loop, coro) -> Task or None: runs coro until it first suspends,
 *     in a copy of the current context, with a Task (a "shell") entered as
 *     loop's current task in asyncio's registry of current tasks; returns
 *     None if the coroutine is done, else the Task that goes on with it.
 *     Raises what the coroutine raised, except CancelledError.
 *
 * What the Python version pays for on every request and this one does not:
 * the coroutine's __await__ wrapper, next() and Context.run as Python
 * calls, the calls that count references, the list of free shells (here a
 * small array). The step is sent with PyIter_Send, as asyncio's own C Task
 * does: a coroutine that returns raises no StopIteration.
 *
 * Only a step that ends with a shell nobody can tell from a fresh one is
 * done here alone. A step that suspends, raises, or leaves its Task held by
 * someone calls squall._eager_resume's _suspended or _kept, shared with the
 * Python version. So does making a shell (_new_shell).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Free shells, a stack. Nested steps each take their own; a shell that finds
 * the stack full is dropped (Tasks are made as needed). The GIL is held from
 * the pop to the push of each one, with no Python code in between that
 * could reach this stack for that shell. */
#define MAX_SHELLS 8
static PyObject *shells[MAX_SHELLS];
static int shell_count;

static PyObject *current_tasks;   /* asyncio.tasks._current_tasks, a dict */
static PyObject *cancelled_error; /* asyncio.CancelledError */
static PyObject *new_shell;       /* squall._eager_resume._new_shell */
static PyObject *suspended;       /* squall._eager_resume._suspended */
static PyObject *kept;            /* squall._eager_resume._kept */
static PyObject *str_cancelling;
static PyObject *str_callbacks;

/* 1 if nobody can tell `task` from a fresh shell after its step: its
 * reference count is what it was before the step, its only weak reference
 * is the registry of all tasks' (a WeakSet), it has no done callback and no
 * cancellation was asked; 0 if someone can; -1 with an exception set. */
static int is_untouched(PyObject *task, Py_ssize_t refs) {
    if (Py_REFCNT(task) != refs) return 0;
    if (Py_TYPE(task)->tp_weaklistoffset == 0) return 0;
    PyWeakReference *head = *(PyWeakReference **)PyObject_GET_WEAKREFS_LISTPTR(task);
    if (head == NULL || head->wr_next != NULL) return 0;
    PyObject *callbacks = PyObject_GetAttr(task, str_callbacks);
    if (callbacks == NULL) return -1;
    Py_DECREF(callbacks);
    if (callbacks != Py_None) return 0;
    PyObject *cancelling = PyObject_CallMethodNoArgs(task, str_cancelling);
    if (cancelling == NULL) return -1;
    int asked = PyObject_IsTrue(cancelling);
    Py_DECREF(cancelling);
    if (asked < 0) return -1;
    return !asked;
}

static PyObject *start(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError,
                            "start() takes 2 positional arguments but %zd were given", nargs);
    }
    PyObject *loop = args[0];
    PyObject *coro = args[1];
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL) return NULL;
    PyObject *task;
    if (shell_count > 0) {
        task = shells[--shell_count]; /* the stack's reference, now ours */
    } else {
        task = PyObject_CallNoArgs(new_shell);
        if (task == NULL) {
            Py_DECREF(context);
            return NULL;
        }
    }
    PyObject *outer = PyDict_GetItemWithError(current_tasks, loop);
    if (outer == NULL && PyErr_Occurred()) goto fail;
    Py_XINCREF(outer);
    /* Counted with the registry's reference not yet taken, as after the
     * registry is put back. */
    Py_ssize_t refs = Py_REFCNT(task);
    if (PyDict_SetItem(current_tasks, loop, task) < 0) {
        Py_XDECREF(outer);
        goto fail;
    }

    PyObject *result = NULL;
    PySendResult status;
    PyObject *err_type = NULL, *err_value = NULL, *err_tb = NULL;
    if (PyContext_Enter(context) < 0) {
        status = PYGEN_ERROR;
    } else {
        if (PyCoro_CheckExact(coro)) {
            status = PyIter_Send(coro, Py_None, &result);
        } else {
            /* Another awaitable (a coroutine compiled by mypyc): what its
             * __await__ returns is stepped, as the Python version does. */
            PyAsyncMethods *async = Py_TYPE(coro)->tp_as_async;
            PyObject *iterator = async != NULL && async->am_await != NULL
                                     ? async->am_await(coro)
                                     : PyObject_CallMethod(coro, "__await__", NULL);
            if (iterator == NULL) {
                status = PYGEN_ERROR;
            } else {
                status = PyIter_Send(iterator, Py_None, &result);
                Py_DECREF(iterator);
            }
        }
        if (status == PYGEN_ERROR) PyErr_Fetch(&err_type, &err_value, &err_tb);
        if (PyContext_Exit(context) < 0) {
            /* Cannot happen (the context is the one entered, in this
             * thread): if it does, that is the error to report. */
            Py_XDECREF(result);
            result = NULL;
            Py_XDECREF(err_type);
            Py_XDECREF(err_value);
            Py_XDECREF(err_tb);
            status = PYGEN_ERROR;
            PyErr_Fetch(&err_type, &err_value, &err_tb);
        }
    }
    if (status == PYGEN_ERROR && err_type == NULL) PyErr_Fetch(&err_type, &err_value, &err_tb);

    /* The registry as it was. */
    int restored;
    if (outer != NULL) {
        restored = PyDict_SetItem(current_tasks, loop, outer);
        Py_DECREF(outer);
    } else {
        restored = PyDict_DelItem(current_tasks, loop);
        if (restored < 0 && PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
            restored = 0;
        }
    }
    if (restored < 0) {
        Py_XDECREF(result);
        Py_XDECREF(err_type);
        Py_XDECREF(err_value);
        Py_XDECREF(err_tb);
        goto fail;
    }

    if (status == PYGEN_NEXT) {
        /* Suspended: result is what the coroutine yielded. */
        PyObject *args5[5] = {task, coro, result, loop, context};
        PyObject *going_on = PyObject_Vectorcall(suspended, args5, 5, NULL);
        Py_DECREF(result);
        Py_DECREF(task);
        Py_DECREF(context);
        return going_on;
    }
    Py_XDECREF(result); /* the value the coroutine returned: unused */

    int untouched = is_untouched(task, refs);
    if (untouched > 0) {
        if (shell_count < MAX_SHELLS) {
            shells[shell_count++] = task;
        } else {
            Py_DECREF(task);
        }
        task = NULL;
    } else if (untouched == 0) {
        PyObject *error = Py_None;
        if (err_type != NULL) {
            PyErr_NormalizeException(&err_type, &err_value, &err_tb);
            if (err_tb != NULL) PyException_SetTraceback(err_value, err_tb);
            error = err_value;
        }
        PyObject *args4[4] = {task, loop, context, error};
        PyObject *none = PyObject_Vectorcall(kept, args4, 4, NULL);
        if (none == NULL) {
            Py_XDECREF(err_type);
            Py_XDECREF(err_value);
            Py_XDECREF(err_tb);
            goto fail;
        }
        Py_DECREF(none);
    } else {
        Py_XDECREF(err_type);
        Py_XDECREF(err_value);
        Py_XDECREF(err_tb);
        goto fail;
    }
    Py_XDECREF(task);
    Py_DECREF(context);
    if (err_type == NULL) Py_RETURN_NONE;
    if (PyErr_GivenExceptionMatches(err_type, cancelled_error)) {
        /* A cancellation ends the coroutine, as it would end a Task. */
        Py_DECREF(err_type);
        Py_XDECREF(err_value);
        Py_XDECREF(err_tb);
        Py_RETURN_NONE;
    }
    PyErr_Restore(err_type, err_value, err_tb);
    return NULL;

fail:
    /* An error of start's own (no memory, a broken registry): the shell is
     * not reused, the step not taken or its outcome lost. */
    Py_XDECREF(task);
    Py_DECREF(context);
    return NULL;
}

static PyMethodDef methods[] = {
    {"start", (PyCFunction)(void (*)(void))start, METH_FASTCALL,
     "start($module, loop, coro, /)\n--\n\n"
     "Run coro until it first suspends; return the Task that goes on with it,\n"
     "or None if it is done already."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._eager_step",
    "A coroutine's first step outside a Task, in C (speedups/c/eager.c);\n"
    "squall/_eager_step.py is the reference.",
    -1, methods, NULL, NULL, NULL, NULL,
};

static PyObject *attribute_of(const char *module_name, const char *name) {
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) return NULL;
    PyObject *value = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return value;
}

PyMODINIT_FUNC PyInit__eager_step(void) {
    if (current_tasks == NULL) {
        current_tasks = attribute_of("asyncio.tasks", "_current_tasks");
        if (current_tasks == NULL) return NULL;
        if (!PyDict_Check(current_tasks)) {
            Py_CLEAR(current_tasks);
            return PyErr_Format(PyExc_ImportError,
                                "asyncio.tasks._current_tasks is not a dict on this Python");
        }
    }
    if (cancelled_error == NULL) {
        cancelled_error = attribute_of("asyncio", "CancelledError");
        if (cancelled_error == NULL) return NULL;
    }
    if (new_shell == NULL) {
        new_shell = attribute_of("squall._eager_resume", "_new_shell");
        if (new_shell == NULL) return NULL;
    }
    if (suspended == NULL) {
        suspended = attribute_of("squall._eager_resume", "_suspended");
        if (suspended == NULL) return NULL;
    }
    if (kept == NULL) {
        kept = attribute_of("squall._eager_resume", "_kept");
        if (kept == NULL) return NULL;
    }
    if (str_cancelling == NULL) {
        str_cancelling = PyUnicode_InternFromString("cancelling");
        if (str_cancelling == NULL) return NULL;
    }
    if (str_callbacks == NULL) {
        str_callbacks = PyUnicode_InternFromString("_callbacks");
        if (str_callbacks == NULL) return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    PyObject *names = Py_BuildValue("[s]", "start");
    if (names == NULL || PyModule_AddObject(module, "__all__", names) < 0) {
        Py_XDECREF(names);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
