/* squall._h1._quick, compiled: one pass over a request head in C.
 *
 * request_head(buf, start, line_end, end, max_count) returns the Request
 * event of a head in its common shape, or None. find_request_head(buf, pos,
 * scan, max_start_line, max_header_size, max_count) first finds the head
 * that starts at pos, as H1Connection._find_head does for a complete head
 * within the limits, and returns (Request, position after the head). The common shape: a method
 * among GET POST HEAD PUT DELETE OPTIONS PATCH, one SP, an origin-form
 * target of visible ASCII, one SP, HTTP/1.1 or HTTP/1.0; then at most
 * max_count field lines, each token ":" field-value CRLF (RFC 9112 section
 * 5, RFC 9110 section 5.5: value octets HTAB, SP-~, 0x80-0xFF).
 *
 * None means "not decided here": the Python parser (squall/_h1/_heads.py)
 * then parses the same bytes and either accepts them (another method, an
 * absolute-form target, ...) or raises the error with its message and
 * status. So this code never raises for bad input and never rejects
 * anything itself; for a head it accepts, its Request equals the Python
 * parser's (tests/test_speedups.py checks both on the same bytes).
 *
 * The buffer layout is the one squall/_h1/_heads.py documents:
 * buf[start:line_end] is the request line, buf[line_end:end] the field
 * lines each preceded by CRLF, buf[end:end + 4] is CRLF CRLF.
 *
 * Only CPython's public API. It needs the GIL (Py_mod_gil): it reads a
 * bytearray's storage in place while it parses, which another thread could
 * resize under it without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* RFC 9110 section 5.6.2: tchar. */
static unsigned char is_tchar[256];
/* RFC 9110 section 5.5: field-content octets (VCHAR, SP, HTAB, obs-text). */
static unsigned char is_vchar[256];

static PyObject *make_request;  /* squall._h1._events.make_request */
static PyObject *str_methods[7];
static const char *const method_names[7] = {
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"};
static PyObject *str_http11, *str_http10, *str_empty;

/* Canonical field names ("content-type" -> "Content-Type") by lower-cased
 * name: a direct-mapped table, so a peer sending endless distinct names
 * only evicts entries and memory stays fixed. Longer names are not cached. */
#define NAME_SLOTS 512
#define NAME_MAX_LEN 40
typedef struct {
    Py_ssize_t len;
    char lower[NAME_MAX_LEN];
    PyObject *canon;
} name_slot;
static name_slot names[NAME_SLOTS];

static void init_tables(void) {
    const char *t = "!#$%&'*+-.^_`|~";
    for (int c = '0'; c <= '9'; c++) is_tchar[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) is_tchar[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) is_tchar[c] = 1;
    for (; *t; t++) is_tchar[(unsigned char)*t] = 1;
    is_vchar['\t'] = 1;
    for (int c = 0x20; c <= 0x7e; c++) is_vchar[c] = 1;
    for (int c = 0x80; c <= 0xff; c++) is_vchar[c] = 1;
}

static inline unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* New reference to the canonical spelling of the token name[0:len]: each
 * dash-separated word with its first character upper-cased and the rest
 * lower-cased, which is what str.capitalize() does to an ASCII word. */
static PyObject *canonical(const unsigned char *name, Py_ssize_t len) {
    char low[NAME_MAX_LEN];
    if (len <= NAME_MAX_LEN) {
        uint32_t h = 2166136261u;
        for (Py_ssize_t i = 0; i < len; i++) {
            low[i] = (char)lower(name[i]);
            h = (h ^ (unsigned char)low[i]) * 16777619u;
        }
        name_slot *s = &names[h % NAME_SLOTS];
        if (s->canon != NULL && s->len == len && memcmp(s->lower, low, (size_t)len) == 0) {
            Py_INCREF(s->canon);
            return s->canon;
        }
        PyObject *canon = PyUnicode_New(len, 127);
        if (canon == NULL) return NULL;
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(canon);
        int word_start = 1;
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)low[i];
            out[i] = (word_start && c >= 'a' && c <= 'z') ? (Py_UCS1)(c - 32) : c;
            word_start = c == '-';
        }
        /* Interned: lookups with the literal "Host", "Content-Length"...
         * then compare by identity. */
        PyUnicode_InternInPlace(&canon);
        Py_XSETREF(s->canon, canon);
        Py_INCREF(canon);
        s->len = len;
        memcpy(s->lower, low, (size_t)len);
        return canon;
    }
    PyObject *canon = PyUnicode_New(len, 127);
    if (canon == NULL) return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(canon);
    int word_start = 1;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = lower(name[i]);
        out[i] = (word_start && c >= 'a' && c <= 'z') ? (Py_UCS1)(c - 32) : c;
        word_start = c == '-';
    }
    return canon;
}

static PyObject *latin1(const unsigned char *p, Py_ssize_t n, int high) {
    PyObject *s = PyUnicode_New(n, high ? 255 : 127);
    if (s != NULL && n) memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    return s;
}

/* Whether the eight octets at p are all SP to "~" (SWAR: a borrow out of
 * an octet below 0x20, a carry into the top bit of one above 0x7E). */
static inline int printable8(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    const uint64_t ones = 0x0101010101010101ULL, tops = 0x8080808080808080ULL;
    uint64_t below = (w - ones * 0x20) & ~w & tops;
    uint64_t above = ((w + ones) | w) & tops;
    return (below | above) == 0;
}

static PyObject *method_of(const unsigned char *p, Py_ssize_t n) {
    for (int i = 0; i < 7; i++) {
        const char *m = method_names[i];
        if ((Py_ssize_t)strlen(m) == n && memcmp(p, m, (size_t)n) == 0) return str_methods[i];
    }
    return NULL;
}

/* The fields of b[pos:end] (each line ends with CRLF, the last at end) into
 * a new dict; *high is set if any value has an octet above 0x7F. Returns
 * NULL with no exception set for a block this code does not decide. */
static PyObject *fields_of(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end,
                           Py_ssize_t max_count, int *high) {
    PyObject *fields = PyDict_New();
    if (fields == NULL) return NULL;
    Py_ssize_t count = 0;
    int any_high = 0;
    while (pos < end + 2) {
        if (++count > max_count) goto undecided;
        Py_ssize_t name = pos;
        while (is_tchar[b[pos]]) pos++;
        Py_ssize_t name_len = pos - name;
        if (name_len == 0 || b[pos] != ':') goto undecided;
        pos++;
        while (b[pos] == ' ' || b[pos] == '\t') pos++;
        Py_ssize_t value = pos;
        int hi = 0;
        /* Eight octets at a time while they are all SP to "~" (buf[end:end
         * + 4] is CRLF CRLF, so the loads stay inside the buffer). */
        while (pos + 8 <= end + 4 && printable8(b + pos)) pos += 8;
        /* The CR of the line's CRLF stops it: not a field-content octet. */
        while (is_vchar[b[pos]]) {
            hi |= b[pos] & 0x80;
            pos++;
        }
        if (pos > end || b[pos] != '\r' || b[pos + 1] != '\n') goto undecided;
        Py_ssize_t value_end = pos;
        while (value_end > value && (b[value_end - 1] == ' ' || b[value_end - 1] == '\t'))
            value_end--;
        pos += 2;
        any_high |= hi;
        PyObject *key = canonical(b + name, name_len);
        if (key == NULL) goto error;
        PyObject *v = latin1(b + value, value_end - value, hi);
        if (v == NULL) {
            Py_DECREF(key);
            goto error;
        }
        PyObject *values = PyList_New(1);
        if (values == NULL) {
            Py_DECREF(v);
            Py_DECREF(key);
            goto error;
        }
        PyList_SET_ITEM(values, 0, v);
        /* One lookup: the new list goes in, or the name's list comes back. */
        PyObject *present = PyDict_SetDefault(fields, key, values);
        Py_DECREF(key);
        if (present == NULL) {
            Py_DECREF(values);
            goto error;
        }
        if (present != values) {
            int rc = PyList_Append(present, v);
            Py_DECREF(values);
            if (rc < 0) goto error;
            continue;
        }
        Py_DECREF(values);
    }
    *high = any_high;
    return fields;
undecided:
    Py_DECREF(fields);
    return NULL;
error:
    Py_DECREF(fields);
    return NULL;
}

/* The Request of the head b[start:end + 4] (layout checked by the caller),
 * or NULL: with an exception set on failure, without one for a head this
 * code does not decide. */
static PyObject *parse_head(const unsigned char *b, Py_ssize_t start, Py_ssize_t line_end,
                            Py_ssize_t end, Py_ssize_t max_count) {
    /* RFC 9112 section 3: method SP request-target SP HTTP-version. */
    const unsigned char *line = b + start;
    Py_ssize_t n = line_end - start;
    const unsigned char *sp1 = memchr(line, ' ', (size_t)n);
    if (sp1 == NULL) return NULL;
    PyObject *method = method_of(line, sp1 - line);
    if (method == NULL) return NULL;
    const unsigned char *t = sp1 + 1;
    const unsigned char *line_stop = line + n;
    const unsigned char *sp2 = memchr(t, ' ', (size_t)(line_stop - t));
    if (sp2 == NULL || sp2 == t || *t != '/') return NULL;
    for (const unsigned char *q = t; q < sp2; q++)
        if (*q < 0x21 || *q > 0x7e) return NULL;
    PyObject *version;
    if (line_stop - (sp2 + 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) return NULL;
    if (sp2[8] == '1')
        version = str_http11;
    else if (sp2[8] == '0')
        version = str_http10;
    else
        return NULL;

    PyObject *fields, *block;
    if (line_end >= end) {
        fields = PyDict_New();
        if (fields == NULL) return NULL;
        block = str_empty;
        Py_INCREF(block);
    } else {
        int high = 0;
        fields = fields_of(b, line_end + 2, end, max_count, &high);
        if (fields == NULL) return NULL;
        block = latin1(b + line_end + 2, end - (line_end + 2), high);
        if (block == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
    }
    PyObject *target = latin1(t, sp2 - t, 0);
    if (target == NULL) {
        Py_DECREF(fields);
        Py_DECREF(block);
        return NULL;
    }
    PyObject *call[6] = {method, target, version, Py_None, fields, block};
    PyObject *req = PyObject_Vectorcall(make_request, call, 6, NULL);
    Py_DECREF(target);
    Py_DECREF(fields);
    Py_DECREF(block);
    return req;
}

/* The bytes of a bytes or bytearray object; 0 for another type. */
static int bytes_of(PyObject *buf, const unsigned char **b, Py_ssize_t *size) {
    if (PyBytes_CheckExact(buf)) {
        *b = (const unsigned char *)PyBytes_AS_STRING(buf);
        *size = PyBytes_GET_SIZE(buf);
        return 1;
    }
    if (PyByteArray_CheckExact(buf)) {
        *b = (const unsigned char *)PyByteArray_AS_STRING(buf);
        *size = PyByteArray_GET_SIZE(buf);
        return 1;
    }
    return 0;
}

static int ssize_args(PyObject *const *args, Py_ssize_t n, Py_ssize_t *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsSsize_t(args[i]);
        if (out[i] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *request_head(PyObject *Py_UNUSED(module), PyObject *const *args,
                              Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "request_head() takes 5 arguments");
        return NULL;
    }
    const unsigned char *b;
    Py_ssize_t size, v[4];
    if (ssize_args(args + 1, 4, v) < 0) return NULL;
    if (!bytes_of(args[0], &b, &size)) Py_RETURN_NONE;
    Py_ssize_t start = v[0], line_end = v[1], end = v[2], max_count = v[3];
    /* The layout promised by the caller; anything else is left to Python. */
    if (start < 0 || line_end < start || end < line_end || end + 4 > size ||
        memcmp(b + end, "\r\n\r\n", 4) != 0 ||
        (line_end < end && memcmp(b + line_end, "\r\n", 2) != 0))
        Py_RETURN_NONE;
    PyObject *req = parse_head(b, start, line_end, end, max_count);
    if (req == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return req;
}

/* Index of the first "\r\n\r\n" in b[from:size], or -1. */
static Py_ssize_t find_blank_line(const unsigned char *b, Py_ssize_t from, Py_ssize_t size) {
    const unsigned char *p = b + from, *stop = b + size;
    while (stop - p >= 4) {
        p = memchr(p, '\r', (size_t)(stop - p - 3));
        if (p == NULL) return -1;
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') return p - b;
        p++;
    }
    return -1;
}

static PyObject *find_request_head(PyObject *Py_UNUSED(module), PyObject *const *args,
                                   Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "find_request_head() takes 6 arguments");
        return NULL;
    }
    const unsigned char *b;
    Py_ssize_t size, v[5];
    if (ssize_args(args + 1, 5, v) < 0) return NULL;
    if (!bytes_of(args[0], &b, &size)) Py_RETURN_NONE;
    Py_ssize_t pos = v[0], scan = v[1], max_start_line = v[2], max_header_size = v[3];
    /* Empty lines before the head (RFC 9112 section 2.2), an incomplete
     * head and the size limits are H1Connection._find_head's to handle. */
    if (pos < 0 || pos >= size || b[pos] == '\r' || b[pos] == '\n') Py_RETURN_NONE;
    Py_ssize_t end = find_blank_line(b, scan > pos ? scan : pos, size);
    if (end < 0) Py_RETURN_NONE;
    const unsigned char *cr = b + pos;
    while (!(cr[0] == '\r' && cr[1] == '\n')) cr = memchr(cr + 1, '\r', (size_t)(b + end + 2 - cr));
    Py_ssize_t line_end = cr - b;
    if (line_end - pos > max_start_line || end + 4 - pos > max_header_size) Py_RETURN_NONE;
    PyObject *req = parse_head(b, pos, line_end, end, v[4]);
    if (req == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *after = PyLong_FromSsize_t(end + 4);
    if (after == NULL) {
        Py_DECREF(req);
        return NULL;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(req);
        Py_DECREF(after);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, req);
    PyTuple_SET_ITEM(pair, 1, after);
    return pair;
}

static PyMethodDef methods[] = {
    {"request_head", (PyCFunction)(void (*)(void))request_head, METH_FASTCALL,
     "request_head(buf, start, line_end, end, max_count) -> Request | None\n\n"
     "The Request of a request head in its common shape, or None to let the\n"
     "Python parser decide (and raise its error)."},
    {"find_request_head", (PyCFunction)(void (*)(void))find_request_head, METH_FASTCALL,
     "find_request_head(buf, pos, scan, max_start_line, max_header_size, max_count)\n"
     "-> tuple[Request, int] | None\n\n"
     "Find the complete request head that starts at buf[pos] and parse it as\n"
     "request_head does: its Request and the position after it, or None to\n"
     "let H1Connection find and parse it (and raise its error)."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
    (void)module;
    if (make_request != NULL) return 0; /* (loaded again: the same tables) */
    init_tables();
    PyObject *events = PyImport_ImportModule("squall._h1._events");
    if (events == NULL) return -1;
    make_request = PyObject_GetAttrString(events, "make_request");
    Py_DECREF(events);
    if (make_request == NULL) return -1;
    for (int i = 0; i < 7; i++) {
        str_methods[i] = PyUnicode_InternFromString(method_names[i]);
        if (str_methods[i] == NULL) return -1;
    }
    str_http11 = PyUnicode_InternFromString("HTTP/1.1");
    str_http10 = PyUnicode_InternFromString("HTTP/1.0");
    str_empty = PyUnicode_FromStringAndSize("", 0);
    if (str_http11 == NULL || str_http10 == NULL || str_empty == NULL) return -1;
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* The tables and cached objects are the process's, not a module's. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Needs the GIL: a bytearray's storage is read in place while
     * the head is parsed, and the dict built is filled unlocked. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "squall._h1._quick",
    "Compiled fast path for request heads (speedups/c/quick.c).", 0, methods, module_slots,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__quick(void) { return PyModuleDef_Init(&module_def); }
