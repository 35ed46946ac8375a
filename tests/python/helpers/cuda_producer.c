/* A stand-in for a CUDA framework's tensor type (what torch.Tensor is on a
 * GPU): a C type whose instances claim a device and a made-up device
 * pointer (never dereferenced), with `__dlpack__`, `__dlpack_device__` and a
 * DLPack 1.3 C exchange table (`__dlpack_c_exchange_api__` on the type).
 * Everything a consumer asks is logged (the table's calls, and each
 * `__dlpack__` call's keywords), and the stream `current_work_stream`
 * answers is a global the tests set (ctypes in_dll). */
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint32_t major, minor; } DLPackVersion;
typedef struct { int32_t device_type, device_id; } DLDevice;
typedef struct { uint8_t code, bits; uint16_t lanes; } DLDataType;
typedef struct {
    void *data; DLDevice device; int32_t ndim; DLDataType dtype;
    int64_t *shape, *strides; uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensorVersioned {
    DLPackVersion version; void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *);
    uint64_t flags; DLTensor dl_tensor;
} DLManagedTensorVersioned;
typedef struct DLPackExchangeAPIHeader {
    DLPackVersion version; struct DLPackExchangeAPIHeader *prev_api;
} DLPackExchangeAPIHeader;
typedef struct {
    DLPackExchangeAPIHeader header;
    void *managed_tensor_allocator;
    int (*managed_tensor_from_py_object_no_sync)(void *, DLManagedTensorVersioned **);
    void *managed_tensor_to_py_object_no_sync;
    void *dltensor_from_py_object_no_sync;
    int (*current_work_stream)(int32_t, int32_t, void **);
} DLPackExchangeAPI;

unsigned long long producer_work_stream = 0; /* what current_work_stream writes */
int producer_work_stream_status = 0;         /* and returns (-1: raises) */
long producer_deleted = 0;                   /* deleter calls */
int producer_quiet = 0;                      /* 1: log nothing (instruction counts) */

static char log_text[8192];
static size_t log_len = 0;

static void note(const char *text) {
    if (producer_quiet) return;
    size_t n = strlen(text);
    if (log_len + n + 1 < sizeof log_text) {
        memcpy(log_text + log_len, text, n + 1);
        log_len += n;
    }
}

const char *producer_log(void) { return log_text; }
void producer_reset(void) { log_len = 0; log_text[0] = 0; }

typedef struct {
    PyObject_HEAD
    DLDevice device;
    unsigned long long data;
} FakeTensor;

/* One allocation per export: the header and its shape and strides. */
typedef struct { DLManagedTensorVersioned header; int64_t shape[1], strides[1]; } Block;

static void delete_block(DLManagedTensorVersioned *self) { producer_deleted++; free(self); }

static DLManagedTensorVersioned *export(DLDevice device, unsigned long long data, int copied) {
    Block *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->shape[0] = 4; b->strides[0] = 1;
    b->header.version.major = 1; b->header.version.minor = 3;
    b->header.deleter = delete_block;
    b->header.flags = copied ? 2 : 0; /* IS_COPIED */
    b->header.dl_tensor = (DLTensor){ (void *)(uintptr_t)data, device, 1, {2, 32, 1}, b->shape, b->strides, 0 };
    return &b->header;
}

static int from_py_object(void *object, DLManagedTensorVersioned **out) {
    FakeTensor *self = object;
    char line[96];
    if (!producer_quiet) {
        snprintf(line, sizeof line, "managed_tensor_from_py_object_no_sync (%d, %d)\n",
                 self->device.device_type, self->device.device_id);
        note(line);
    }
    *out = export(self->device, self->data, 0);
    if (!*out) { PyErr_NoMemory(); return -1; }
    return 0;
}

static int current_work_stream(int32_t device_type, int32_t device_id, void **stream) {
    char line[96];
    if (!producer_quiet) {
        snprintf(line, sizeof line, "current_work_stream (%d, %d) -> %#llx\n", device_type, device_id,
                 producer_work_stream);
        note(line);
    }
    if (producer_work_stream_status) {
        PyErr_SetString(PyExc_RuntimeError, "no current stream");
        return -1;
    }
    *stream = (void *)(uintptr_t)producer_work_stream;
    return 0;
}

static DLPackExchangeAPI table = {
    {{1, 3}, NULL}, NULL, from_py_object, NULL, NULL, current_work_stream,
};

static void capsule_destructor(PyObject *capsule) {
    if (PyCapsule_IsValid(capsule, "used_dltensor_versioned")) return;
    DLManagedTensorVersioned *m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
    if (!m) { PyErr_WriteUnraisable(capsule); return; }
    m->deleter(m);
}

/* `__dlpack__(**kwargs)`: logs the keywords (repr of the dict, sorted by
 * the caller's order), honours dl_device and copy=True (a copy at another
 * made-up address, flagged IS_COPIED). */
static PyObject *dunder_dlpack(PyObject *object, PyObject *args, PyObject *kwargs) {
    FakeTensor *self = (FakeTensor *)object;
    if (PyTuple_GET_SIZE(args)) { PyErr_SetString(PyExc_TypeError, "keywords only"); return NULL; }
    PyObject *shown = kwargs ? PyObject_Repr(kwargs) : PyUnicode_FromString("{}");
    if (!shown) return NULL;
    note("__dlpack__ ");
    note(PyUnicode_AsUTF8(shown));
    note("\n");
    Py_DECREF(shown);
    DLDevice device = self->device;
    int copied = 0;
    if (kwargs) {
        PyObject *dl_device = PyDict_GetItemString(kwargs, "dl_device");
        if (dl_device && dl_device != Py_None &&
            !PyArg_ParseTuple(dl_device, "ii", &device.device_type, &device.device_id)) return NULL;
        PyObject *copy = PyDict_GetItemString(kwargs, "copy");
        copied = copy == Py_True;
    }
    copied |= device.device_type != self->device.device_type || device.device_id != self->device.device_id;
    DLManagedTensorVersioned *m = export(device, copied ? self->data + 0x100000 : self->data, copied);
    if (!m) return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(m, "dltensor_versioned", capsule_destructor);
    if (!capsule) m->deleter(m);
    return capsule;
}

static PyObject *dunder_dlpack_device(PyObject *object, PyObject *unused) {
    FakeTensor *self = (FakeTensor *)object;
    (void)unused;
    return Py_BuildValue("(ii)", self->device.device_type, self->device.device_id);
}

static PyMethodDef methods[] = {
    {"__dlpack__", (PyCFunction)(void (*)(void))dunder_dlpack, METH_VARARGS | METH_KEYWORDS, NULL},
    {"__dlpack_device__", dunder_dlpack_device, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot slots[] = {{Py_tp_methods, methods}, {0, NULL}};
static PyType_Spec spec = {"cuda_producer.FakeTensor", sizeof(FakeTensor), 0, Py_TPFLAGS_DEFAULT, slots};

/* The type (made once), with its exchange table when `with_table`: two
 * types, so a table can be present or absent without touching the class. */
static PyObject *tensor_type(int with_table) {
    static PyObject *types[2] = {NULL, NULL};
    if (!types[with_table]) {
        PyObject *type = PyType_FromSpec(&spec);
        if (!type) return NULL;
        if (with_table) {
            PyObject *capsule = PyCapsule_New(&table, "dlpack_exchange_api", NULL);
            if (!capsule || PyObject_SetAttrString(type, "__dlpack_c_exchange_api__", capsule) < 0) {
                Py_XDECREF(capsule); Py_DECREF(type); return NULL;
            }
            Py_DECREF(capsule);
        }
        types[with_table] = type;
    }
    return types[with_table];
}

/* A tensor of 4 float32 on (device_type, device_id) at `data`. */
PyObject *make(int device_type, int device_id, unsigned long long data, int with_table) {
    PyObject *type = tensor_type(with_table != 0);
    if (!type) return NULL;
    FakeTensor *self = PyObject_New(FakeTensor, (PyTypeObject *)type);
    if (!self) return NULL;
    self->device = (DLDevice){device_type, device_id};
    self->data = data;
    return (PyObject *)self;
}
