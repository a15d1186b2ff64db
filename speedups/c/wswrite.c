/* squall._wswrite, compiled: WebSocketHandler.write_message without a frame.
 *
 * The loop Tornado programs write to send one message to their subscribers,
 *
 *     for handler in subscribers:
 *         handler.write_message(message)
 *
 * pays, per delivery, the frame of the interpreted method (squall/websocket/
 * _handler.py) around two native calls: the frame's bytes and the write to
 * the transport. write_method(fallback, protocol_class) returns a method
 * object that does that usual case itself:
 *
 *   - the message is exactly a str or bytes, passed as write_message(m),
 *     write_message(m, b) or write_message(m, binary=b);
 *   - the handler's ws_connection is exactly a protocol_class whose _sink
 *     (the transport a frame may go straight to: set only while the
 *     connection is open, uncompressed and on the server side) is set:
 *     sink.write(frame), then the protocol's _done, where frame is what
 *     squall._ws.server_frame(message, binary) gives (made here, and kept
 *     for the next call with the same message object, as server_frame keeps
 *     its own; not counted in the connection's tallies, as there); a
 *     RuntimeError from the write (a transport closed under a stream not
 *     told yet) sends through protocol.write_message instead;
 *   - another protocol, or one without a sink: protocol.write_message(
 *     message, binary).
 *
 * Anything else (no connection, another message type, other arguments)
 * calls fallback, the Python method, with the arguments as given: the
 * outcome is the Python method's in every case, which tests/test_wswrite.py
 * checks against it. squall/_wswrite.py is the pure build's write_method,
 * which returns fallback itself.
 *
 * The object is a method descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR): a call
 * through an instance binds no method object; read from an instance it
 * gives a bound method, from the class itself. __wrapped__ is fallback, so
 * inspect.signature and help() show the Python method's.
 *
 * Only CPython's public API: the connection's _sink and _done and the
 * transport's write are looked up by name on every call (no class version
 * tags, no slot offsets read from member descriptors), so a class changed
 * after the first call is read as it now is. It needs the GIL (Py_mod_gil):
 * the frame kept for the next call is a field that calls replace, with no
 * lock of its own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *fallback;
    PyObject *protocol_class;
    vectorcallfunc vectorcall;
    /* The frame made last, of last_message (a str or bytes: immutable,
     * compared by identity) and last_binary; NULL for none. */
    PyObject *last_message;
    PyObject *last_frame;
    int last_binary;
} WriteMethod;

/* The largest payload whose frame is kept: squall._ws.FRAME_CACHE_LIMIT. */
#define FRAME_CACHE_LIMIT 4096

static PyObject *str_ws_connection;
static PyObject *str_sink;
static PyObject *str_done;
static PyObject *str_write;
static PyObject *str_write_message;
static PyObject *str_binary;

/* The unmasked, uncompressed frame of a whole message (RFC 6455 section
 * 5.2): the bytes squall._ws.server_frame gives; a new reference, or NULL
 * with an exception (a str that is not UTF-8-encodable, a binary flag
 * whose truth cannot be told). */
static PyObject *message_frame(WriteMethod *wm, PyObject *message, PyObject *binary) {
    int is_binary = PyObject_IsTrue(binary);
    if (is_binary < 0) return NULL;
    if (message == wm->last_message && is_binary == wm->last_binary)
        return Py_NewRef(wm->last_frame);
    const char *payload;
    Py_ssize_t length;
    PyObject *encoded = NULL;
    if (PyBytes_CheckExact(message)) {
        payload = PyBytes_AS_STRING(message);
        length = PyBytes_GET_SIZE(message);
    } else if (PyUnicode_IS_COMPACT_ASCII(message)) {
        /* ASCII is its own UTF-8: read in place. */
        payload = PyUnicode_AsUTF8AndSize(message, &length);
        if (payload == NULL) return NULL;
    } else {
        /* Encoded into a bytes object of our own: PyUnicode_AsUTF8AndSize
         * would keep a UTF-8 copy inside the str for as long as it lives. */
        encoded = PyUnicode_AsUTF8String(message);
        if (encoded == NULL) return NULL;
        payload = PyBytes_AS_STRING(encoded);
        length = PyBytes_GET_SIZE(encoded);
    }
    Py_ssize_t head = length < 126 ? 2 : length <= 0xFFFF ? 4 : 10;
    PyObject *frame = PyBytes_FromStringAndSize(NULL, head + length);
    if (frame == NULL) {
        Py_XDECREF(encoded);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(frame);
    out[0] = 0x80 | (is_binary ? 0x2 : 0x1); /* FIN, the message's opcode */
    if (head == 2) {
        out[1] = (unsigned char)length;
    } else if (head == 4) {
        out[1] = 126;
        out[2] = (unsigned char)(length >> 8);
        out[3] = (unsigned char)length;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)((uint64_t)length >> (56 - 8 * i));
    }
    memcpy(out + head, payload, (size_t)length);
    Py_XDECREF(encoded);
    if (length <= FRAME_CACHE_LIMIT) {
        Py_XSETREF(wm->last_message, Py_NewRef(message));
        Py_XSETREF(wm->last_frame, Py_NewRef(frame));
        wm->last_binary = is_binary;
    }
    return frame;
}

/* protocol.write_message(message, binary), letting go of protocol (a new
 * reference the caller hands over). */
static PyObject *protocol_write(PyObject *protocol, PyObject *message, PyObject *binary) {
    PyObject *args[3] = {protocol, message, binary};
    PyObject *result = PyObject_VectorcallMethod(str_write_message, args,
                                                 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(protocol);
    return result;
}

static PyObject *write_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames) {
    WriteMethod *wm = (WriteMethod *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *binary;
    if (kwnames == NULL) {
        if (nargs == 2)
            binary = Py_False;
        else if (nargs == 3)
            binary = args[2];
        else
            goto fallback;
    } else if (nargs == 2 && PyTuple_GET_SIZE(kwnames) == 1 &&
               PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) &&
               PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), str_binary) == 0) {
        binary = args[2];
    } else {
        goto fallback;
    }
    PyObject *message = args[1];
    if (!PyUnicode_CheckExact(message) && !PyBytes_CheckExact(message)) goto fallback;
    PyObject *protocol = PyObject_GetAttr(args[0], str_ws_connection);
    if (protocol == NULL) return NULL;
    if (protocol == Py_None) {
        /* Closed: the Python method raises WebSocketClosedError. */
        Py_DECREF(protocol);
        goto fallback;
    }
    if ((PyObject *)Py_TYPE(protocol) != wm->protocol_class)
        return protocol_write(protocol, message, binary);
    PyObject *sink = PyObject_GetAttr(protocol, str_sink);
    if (sink == NULL) {
        /* (An unset slot raises AttributeError, as the Python method's read.) */
        Py_DECREF(protocol);
        return NULL;
    }
    if (sink == Py_None) {
        Py_DECREF(sink);
        return protocol_write(protocol, message, binary);
    }
    PyObject *frame = message_frame(wm, message, binary);
    if (frame == NULL) goto error_sink;
    PyObject *write_args[2] = {sink, frame};
    PyObject *written = PyObject_VectorcallMethod(str_write, write_args, 2, NULL);
    Py_DECREF(frame);
    if (written == NULL) goto refused;
    Py_DECREF(written);
    Py_DECREF(sink);
    PyObject *done = PyObject_GetAttr(protocol, str_done);
    Py_DECREF(protocol);
    return done;

refused:
    if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) goto error_sink;
    PyErr_Clear();
    Py_DECREF(sink);
    return protocol_write(protocol, message, binary);
error_sink:
    Py_DECREF(sink);
    Py_DECREF(protocol);
    return NULL;

fallback:
    return PyObject_Vectorcall(wm->fallback, args, nargsf, kwnames);
}

static PyObject *write_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type)) {
    if (obj == NULL || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static int write_traverse(WriteMethod *wm, visitproc visit, void *arg) {
    Py_VISIT(wm->fallback);
    Py_VISIT(wm->protocol_class);
    Py_VISIT(wm->last_message);
    Py_VISIT(wm->last_frame);
    return 0;
}

static int write_clear(WriteMethod *wm) {
    Py_CLEAR(wm->fallback);
    Py_CLEAR(wm->protocol_class);
    Py_CLEAR(wm->last_message);
    Py_CLEAR(wm->last_frame);
    return 0;
}

static void write_dealloc(WriteMethod *wm) {
    PyObject_GC_UnTrack(wm);
    write_clear(wm);
    PyObject_GC_Del(wm);
}

/* __doc__, __name__, __qualname__ and __module__ are the Python method's. */
static PyObject *fallback_attr(WriteMethod *wm, void *name) {
    if (wm->fallback == NULL) {
        PyErr_SetString(PyExc_AttributeError, (const char *)name);
        return NULL;
    }
    return PyObject_GetAttrString(wm->fallback, (const char *)name);
}

static PyObject *wrapped_get(WriteMethod *wm, void *Py_UNUSED(closure)) {
    if (wm->fallback == NULL) Py_RETURN_NONE;
    return Py_NewRef(wm->fallback);
}

static PyObject *write_repr(WriteMethod *wm) {
    PyObject *qualname = fallback_attr(wm, "__qualname__");
    if (qualname == NULL) return NULL;
    PyObject *repr = PyUnicode_FromFormat("<squall._wswrite method %S>", qualname);
    Py_DECREF(qualname);
    return repr;
}

static PyGetSetDef write_getset[] = {
    {"__doc__", (getter)fallback_attr, NULL, NULL, "__doc__"},
    {"__name__", (getter)fallback_attr, NULL, NULL, "__name__"},
    {"__qualname__", (getter)fallback_attr, NULL, NULL, "__qualname__"},
    {"__module__", (getter)fallback_attr, NULL, NULL, "__module__"},
    {"__wrapped__", (getter)wrapped_get, NULL, NULL, NULL},
    {NULL},
};

static PyTypeObject WriteMethodType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "squall._wswrite.WriteMethod",
    .tp_basicsize = sizeof(WriteMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(WriteMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = write_get,
    .tp_traverse = (traverseproc)write_traverse,
    .tp_clear = (inquiry)write_clear,
    .tp_dealloc = (destructor)write_dealloc,
    .tp_repr = (reprfunc)write_repr,
    .tp_getset = write_getset,
};

static PyObject *write_method(PyObject *Py_UNUSED(module), PyObject *const *args,
                              Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "write_method takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "fallback must be callable, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (!PyType_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "protocol_class must be a class, not %.100s",
                     Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    WriteMethod *wm = PyObject_GC_New(WriteMethod, &WriteMethodType);
    if (wm == NULL) return NULL;
    wm->fallback = Py_NewRef(args[0]);
    wm->protocol_class = Py_NewRef(args[1]);
    wm->vectorcall = write_call;
    wm->last_message = wm->last_frame = NULL;
    wm->last_binary = 0;
    PyObject_GC_Track(wm);
    return (PyObject *)wm;
}

static PyMethodDef methods[] = {
    {"write_method", (PyCFunction)(void (*)(void))write_method, METH_FASTCALL,
     "write_method(fallback, protocol_class, /)\n--\n\n"
     "WebSocketHandler.write_message: the usual case done natively, every\n"
     "other one by fallback (the Python method)."},
    {NULL, NULL, 0, NULL},
};

static int intern(PyObject **slot, const char *text) {
    if (*slot == NULL) *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

static int module_exec(PyObject *module) {
    if (intern(&str_ws_connection, "ws_connection") < 0 || intern(&str_sink, "_sink") < 0 ||
        intern(&str_done, "_done") < 0 || intern(&str_write, "write") < 0 ||
        intern(&str_write_message, "write_message") < 0 || intern(&str_binary, "binary") < 0)
        return -1;
    if (PyType_Ready(&WriteMethodType) < 0) return -1;
    PyObject *names = Py_BuildValue("[s]", "write_method");
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
    /* The interned names and the type are the process's, not a module's. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Needs the GIL: a WriteMethod's kept frame is replaced by calls without
     * a lock, and the handler's and protocol's attributes are read unlocked. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._wswrite",
    "WebSocketHandler.write_message's native method (speedups/c/wswrite.c); "
    "squall/_wswrite.py is the pure build's.",
    0, methods, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wswrite(void) { return PyModuleDef_Init(&module_def); }
