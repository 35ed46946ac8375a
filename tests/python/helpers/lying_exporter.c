/* A PEP 3118 exporter whose bf_getbuffer can lie, for checking that dlbridge
 * refuses an impossible Py_buffer on every path that acquires one (the
 * buffer protocol, from_buffer, and the `data` of an __array_interface__
 * dict), never hands out a tensor over it, and still releases each buffer it
 * acquired exactly once.
 *
 * liar_type() returns the type (created once). Its constructor:
 *   Liar(mode)
 * describes 16 bytes of zeroed memory (owned by the object, freed on
 * dealloc) as four float32 ('f', itemsize 4, shape (4,), strides (4,)),
 * honouring PyBUF_WRITABLE, PyBUF_FORMAT, PyBUF_ND and PyBUF_STRIDES as an
 * honest exporter does, except:
 *   mode 0 (HONEST):     nothing; the control.
 *   mode 1 (NULL_BUF):   buf = NULL while len stays 16.
 *   mode 2 (SUBOFFSETS): a non-NULL suboffsets array ({0}: "dereference the
 *                        first axis", a PIL-style indirect array), whatever
 *                        the request (PyBUF_INDIRECT or not).
 * Attributes: mode, gets (bf_getbuffer calls that succeeded), releases
 * (bf_releasebuffer calls), exports (gets - releases), address (of the
 * memory), nbytes.
 */
#include <Python.h>
#include <structmember.h>
#include <stdlib.h>

enum { HONEST = 0, NULL_BUF = 1, SUBOFFSETS = 2 };

#define NBYTES 16

typedef struct {
    PyObject_HEAD
    int mode;
    char *data;
    Py_ssize_t address;
    Py_ssize_t nbytes;
    Py_ssize_t shape[1];
    Py_ssize_t strides[1];
    Py_ssize_t suboffsets[1];
    Py_ssize_t gets, releases, exports;
} Liar;

static PyObject *liar_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    int mode;
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Liar takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "i", &mode)) return NULL;
    if (mode < HONEST || mode > SUBOFFSETS) {
        PyErr_Format(PyExc_ValueError, "unknown Liar mode %d", mode);
        return NULL;
    }
    Liar *self = (Liar *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->data = calloc(1, NBYTES);
    if (!self->data) { Py_DECREF(self); return PyErr_NoMemory(); }
    self->mode = mode;
    self->address = (Py_ssize_t)self->data;
    self->nbytes = NBYTES;
    self->shape[0] = NBYTES / 4;
    self->strides[0] = 4;
    self->suboffsets[0] = 0;
    return (PyObject *)self;
}

static void liar_dealloc(Liar *self) {
    PyTypeObject *type = Py_TYPE(self);
    free(self->data);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static int liar_getbuffer(Liar *self, Py_buffer *view, int flags) {
    self->gets++;
    self->exports++;
    view->buf = self->mode == NULL_BUF ? NULL : self->data;
    view->len = self->nbytes;
    view->itemsize = 4;
    view->readonly = 0;
    view->format = (flags & PyBUF_FORMAT) == PyBUF_FORMAT ? "f" : NULL;
    view->ndim = 1;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND ? self->shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? self->strides : NULL;
    view->suboffsets = self->mode == SUBOFFSETS ? self->suboffsets : NULL;
    view->internal = NULL;
    view->obj = Py_NewRef((PyObject *)self);
    return 0;
}

static void liar_releasebuffer(Liar *self, Py_buffer *view) {
    (void)view;
    self->releases++;
    self->exports--;
}

static PyMemberDef liar_members[] = {
    {"mode", T_INT, offsetof(Liar, mode), READONLY, "0 honest, 1 NULL buf, 2 suboffsets"},
    {"gets", T_PYSSIZET, offsetof(Liar, gets), READONLY, "bf_getbuffer calls that succeeded"},
    {"releases", T_PYSSIZET, offsetof(Liar, releases), READONLY, "bf_releasebuffer calls"},
    {"exports", T_PYSSIZET, offsetof(Liar, exports), READONLY, "buffers not yet released"},
    {"address", T_PYSSIZET, offsetof(Liar, address), READONLY, "address of the real memory"},
    {"nbytes", T_PYSSIZET, offsetof(Liar, nbytes), READONLY, "size of the real memory"},
    {NULL},
};

static PyType_Slot liar_slots[] = {
    {Py_tp_new, liar_new},
    {Py_tp_dealloc, liar_dealloc},
    {Py_tp_members, liar_members},
    {Py_bf_getbuffer, liar_getbuffer},
    {Py_bf_releasebuffer, liar_releasebuffer},
    {0, NULL},
};

static PyType_Spec liar_spec = {
    .name = "lying_exporter.Liar",
    .basicsize = sizeof(Liar),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = liar_slots,
};

static PyObject *liar_type_object = NULL;

PyObject *liar_type(void) {
    if (!liar_type_object) {
        liar_type_object = PyType_FromSpec(&liar_spec);
        if (!liar_type_object) return NULL;
    }
    return Py_NewRef(liar_type_object);
}
