/* A tiny PEP 3118 exporter that counts bf_getbuffer / bf_releasebuffer calls,
 * for checking that dlbridge releases every buffer it acquires exactly once.
 *
 * exporter_type() returns the type (created once). Its constructor:
 *   Exporter(nbytes, format, itemsize, ndim, shape, strides, readonly)
 * nbytes bytes of zeroed memory (owned by the object, freed on dealloc) are
 * exported with that format (bytes; b"" exports a NULL format), itemsize and ndim; shape and strides are
 * tuples of ints or None (then NULL is exported). Attributes: gets, releases,
 * exports (gets - releases), address (of the memory), nbytes.
 */
#include <Python.h>
#include <structmember.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIMS 8

typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t nbytes;
    Py_ssize_t address;
    char format[32];
    Py_ssize_t itemsize;
    int ndim;
    int has_shape, has_strides;
    Py_ssize_t shape[MAX_DIMS];
    Py_ssize_t strides[MAX_DIMS];
    int readonly;
    Py_ssize_t gets, releases, exports;
} Exporter;

static int read_dims(PyObject *tuple, Py_ssize_t *out, int *has, const char *what) {
    if (tuple == Py_None) { *has = 0; return 0; }
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) > MAX_DIMS) {
        PyErr_Format(PyExc_TypeError, "%s must be None or a tuple of at most %d ints", what, MAX_DIMS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        out[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(tuple, i));
        if (out[i] == -1 && PyErr_Occurred()) return -1;
    }
    *has = 1;
    return 0;
}

static PyObject *exporter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Py_ssize_t nbytes, itemsize;
    const char *format;
    int ndim, readonly;
    PyObject *shape, *strides;
    if (!PyArg_ParseTuple(args, "nyniOOp", &nbytes, &format, &itemsize, &ndim, &shape, &strides, &readonly))
        return NULL;
    if (nbytes < 0 || strlen(format) >= 32 || ndim < 0 || ndim > MAX_DIMS) {
        PyErr_SetString(PyExc_ValueError, "bad exporter arguments");
        return NULL;
    }
    Exporter *self = (Exporter *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->data = calloc(1, nbytes > 0 ? nbytes : 1);
    if (!self->data) { Py_DECREF(self); return PyErr_NoMemory(); }
    self->nbytes = nbytes;
    self->address = (Py_ssize_t)self->data;
    strcpy(self->format, format);
    self->itemsize = itemsize;
    self->ndim = ndim;
    self->readonly = readonly;
    if (read_dims(shape, self->shape, &self->has_shape, "shape") < 0 ||
        read_dims(strides, self->strides, &self->has_strides, "strides") < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void exporter_dealloc(Exporter *self) {
    PyTypeObject *type = Py_TYPE(self);
    free(self->data);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static int exporter_getbuffer(Exporter *self, Py_buffer *view, int flags) {
    if ((flags & PyBUF_WRITABLE) && self->readonly) {
        view->obj = NULL;
        PyErr_SetString(PyExc_BufferError, "Exporter is readonly");
        return -1;
    }
    self->gets++;
    self->exports++;
    view->buf = self->data;
    view->len = self->nbytes;
    view->itemsize = self->itemsize;
    view->readonly = self->readonly;
    view->format = (flags & PyBUF_FORMAT) && self->format[0] ? self->format : NULL;
    view->ndim = self->ndim;
    view->shape = self->has_shape ? self->shape : NULL;
    view->strides = self->has_strides ? self->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    view->obj = Py_NewRef((PyObject *)self);
    return 0;
}

static void exporter_releasebuffer(Exporter *self, Py_buffer *view) {
    (void)view;
    self->releases++;
    self->exports--;
}

static PyMemberDef exporter_members[] = {
    {"gets", T_PYSSIZET, offsetof(Exporter, gets), READONLY, "bf_getbuffer calls that succeeded"},
    {"releases", T_PYSSIZET, offsetof(Exporter, releases), READONLY, "bf_releasebuffer calls"},
    {"exports", T_PYSSIZET, offsetof(Exporter, exports), READONLY, "buffers not yet released"},
    {"address", T_PYSSIZET, offsetof(Exporter, address), READONLY, "address of the exported memory"},
    {"nbytes", T_PYSSIZET, offsetof(Exporter, nbytes), READONLY, "size of the exported memory"},
    {NULL},
};

static PyType_Slot exporter_slots[] = {
    {Py_tp_new, exporter_new},
    {Py_tp_dealloc, exporter_dealloc},
    {Py_tp_members, exporter_members},
    {Py_bf_getbuffer, exporter_getbuffer},
    {Py_bf_releasebuffer, exporter_releasebuffer},
    {0, NULL},
};

static PyType_Spec exporter_spec = {
    .name = "exporter.Exporter",
    .basicsize = sizeof(Exporter),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = exporter_slots,
};

static PyObject *exporter_type_object = NULL;

PyObject *exporter_type(void) {
    if (!exporter_type_object) {
        exporter_type_object = PyType_FromSpec(&exporter_spec);
        if (!exporter_type_object) return NULL;
    }
    return Py_NewRef(exporter_type_object);
}
