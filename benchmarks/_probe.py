"""Named C entry points around Python functions, so callgrind can count them.

CPython 3.11 runs nested Python calls inside one C frame of the
interpreter loop, so callgrind cannot tell Python functions apart. This
module builds (once, with gcc, into a cache directory) a tiny extension with
``SLOTS`` distinct C functions ``sq_probe_0000``... Each is the vectorcall
of one probe object wrapping a Python function; a probe binds like a
function (it is a method descriptor), so it can replace a method on its
class. callgrind then reports each probe's inclusive instruction count
under its own name. The extension also counts, per probe, the calls made
from each enclosing probe (the innermost one active), which turns the
inclusive counts into self counts.

What probes cannot show: a probe is not the function it wraps, so code
that asks whether a method is the stock one (``type(self).compute_etag is
_stock_compute_etag``, Squall's way of skipping a hook nobody overrode)
takes its slow branch in a profiled run, and the profile then shows calls
and costs the unprobed run does not have. And a compiled module's functions
are C, not probed: their cost is the self cost of the Python function that
calls them. For the compiled build, attribute with the compiled functions'
own inclusive counts instead (``callgrind_annotate --inclusive=yes`` on a
run without probes; their names are ``CPyDef_...``), and read the probed
profile for the interpreted code only.

``sq_measure_a`` and ``sq_measure_b`` call a function with nothing else
around it: run valgrind with ``--collect-atstart=no
--toggle-collect=sq_measure_*`` to count only what they run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType

SLOTS = 2048

_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#define SLOTS %(slots)d
#define MAXDEPTH 4096

typedef struct {
    PyObject_HEAD
    PyObject *func;
    vectorcallfunc vc;
    int slot;
} Probe;

static uint64_t calls[SLOTS + 1][SLOTS];
static int stack[MAXDEPTH];
static int depth;

#define ENTER(n) \
    int parent = depth > 0 ? stack[depth - 1] : SLOTS; \
    calls[parent][n]++; \
    if (depth < MAXDEPTH) stack[depth] = n; \
    depth++;
#define LEAVE() depth--;

%(functions)s

static vectorcallfunc table[SLOTS] = {%(table)s};

static PyTypeObject ProbeType;

static PyObject *probe_new(PyObject *mod, PyObject *args) {
    PyObject *func;
    int slot;
    if (!PyArg_ParseTuple(args, "Oi", &func, &slot)) return NULL;
    if (slot < 0 || slot >= SLOTS) {
        PyErr_SetString(PyExc_ValueError, "slot out of range");
        return NULL;
    }
    Probe *p = PyObject_New(Probe, &ProbeType);
    if (p == NULL) return NULL;
    Py_INCREF(func);
    p->func = func;
    p->slot = slot;
    p->vc = table[slot];
    return (PyObject *)p;
}

static void probe_dealloc(Probe *p) {
    Py_XDECREF(p->func);
    PyObject_Free(p);
}

static PyObject *probe_get(PyObject *self, PyObject *obj, PyObject *type) {
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *probe_getattro(PyObject *self, PyObject *name) {
    PyObject *r = PyObject_GenericGetAttr(self, name);
    if (r != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
    PyErr_Clear();
    return PyObject_GetAttr(((Probe *)self)->func, name);
}

static PyObject *probe_wrapped(Probe *self, void *closure) {
    Py_INCREF(self->func);
    return self->func;
}

static PyGetSetDef probe_getset[] = {
    {"__wrapped__", (getter)probe_wrapped, NULL, NULL, NULL},
    {NULL}
};

static PyTypeObject ProbeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_sqprobe.Probe",
    .tp_basicsize = sizeof(Probe),
    .tp_dealloc = (destructor)probe_dealloc,
    .tp_vectorcall_offset = offsetof(Probe, vc),
    .tp_call = PyVectorcall_Call,
    .tp_getattro = probe_getattro,
    .tp_descr_get = probe_get,
    .tp_getset = probe_getset,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
};

__attribute__((noinline, used)) PyObject *sq_measure_a(PyObject *mod, PyObject *f) {
    return PyObject_CallNoArgs(f);
}

__attribute__((noinline, used)) PyObject *sq_measure_b(PyObject *mod, PyObject *f) {
    return PyObject_CallNoArgs(f);
}

/* Valgrind's client requests: callgrind run with --instr-atstart=no
   instruments only between instrument(True) and instrument(False), so what
   runs outside the measured runs (the interpreter's start, the imports, a
   workload's set-up) runs at valgrind's least slowdown. A no-op outside
   valgrind; False where valgrind's headers were missing at the build. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define SQ_INSTRUMENTS 1
#endif
#endif

static PyObject *instrument(PyObject *mod, PyObject *on) {
#ifdef SQ_INSTRUMENTS
    if (PyObject_IsTrue(on)) {
        CALLGRIND_START_INSTRUMENTATION;
    } else {
        CALLGRIND_STOP_INSTRUMENTATION;
    }
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *reset(PyObject *mod, PyObject *unused) {
    memset(calls, 0, sizeof(calls));
    Py_RETURN_NONE;
}

/* [(parent, child, count)], parent SLOTS meaning "no probe active". */
static PyObject *edges(PyObject *mod, PyObject *unused) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (int p = 0; p <= SLOTS; p++) {
        for (int c = 0; c < SLOTS; c++) {
            if (calls[p][c]) {
                PyObject *t = Py_BuildValue("iiK", p, c, (unsigned long long)calls[p][c]);
                if (t == NULL || PyList_Append(out, t) < 0) {
                    Py_XDECREF(t);
                    Py_DECREF(out);
                    return NULL;
                }
                Py_DECREF(t);
            }
        }
    }
    return out;
}

static PyMethodDef methods[] = {
    {"probe", probe_new, METH_VARARGS, NULL},
    {"measure_a", (PyCFunction)sq_measure_a, METH_O, NULL},
    {"measure_b", (PyCFunction)sq_measure_b, METH_O, NULL},
    {"reset", reset, METH_NOARGS, NULL},
    {"instrument", instrument, METH_O, NULL},
    {"edges", edges, METH_NOARGS, NULL},
    {NULL}
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_sqprobe", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sqprobe(void) {
    if (PyType_Ready(&ProbeType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (m == NULL) return NULL;
    PyModule_AddIntConstant(m, "SLOTS", SLOTS);
    return m;
}
"""

# Each slot has its own body (its own counter index), so the compiler cannot
# fold them into one function and callgrind sees SLOTS distinct names.
_FUNCTION = """
__attribute__((noinline, used)) PyObject *sq_probe_%(n)04d(
        PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    ENTER(%(n)d)
    PyObject *r = PyObject_Vectorcall(((Probe *)self)->func, args, nargsf, kwnames);
    LEAVE()
    return r;
}
"""


def source() -> str:
    functions = "".join(_FUNCTION % {"n": n} for n in range(SLOTS))
    table = ", ".join(f"sq_probe_{n:04d}" for n in range(SLOTS))
    return _C % {"slots": SLOTS, "functions": functions, "table": table}


def load() -> ModuleType:
    """Builds the extension if needed (gcc and Python's headers) and imports it."""
    text = source()
    digest = hashlib.sha1((text + sys.version).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("SQUALL_PROBE_CACHE", tempfile.gettempdir())) / f"sqprobe-{digest}"
    target = cache / ("_sqprobe" + str(sysconfig.get_config_var("EXT_SUFFIX")))
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # Names of this process's own: runs started together (the cache is
        # shared, in /tmp) once compiled one's half-written source, and left
        # a library without its init function for every later run.
        c_file = cache / f"_sqprobe-{os.getpid()}.c"
        c_file.write_text(text)
        include = sysconfig.get_paths()["include"]
        tmp = cache / f"_sqprobe-{os.getpid()}.tmp"
        subprocess.run(
            ["gcc", "-O2", "-g", "-fno-ipa-icf", "-shared", "-fPIC", f"-I{include}"]
            + ["-o", str(tmp), str(c_file)],
            check=True,
        )
        tmp.replace(target)
    spec = spec_from_file_location(
        "_sqprobe", target, loader=ExtensionFileLoader("_sqprobe", str(target))
    )
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
