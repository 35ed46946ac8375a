/* A minimal foreign DLPack producer for exactly-once tests: it builds
 * legacy or versioned capsules the way a C library does (PyCapsule_New with
 * a destructor that calls the deleter only while the capsule is unconsumed,
 * DLPack's Python spec), over a float64 matrix it owns, and counts the calls
 * of its deleter. */
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct { int32_t device_type, device_id; } DLDevice;
typedef struct { uint8_t code, bits; uint16_t lanes; } DLDataType;
typedef struct {
    void *data; DLDevice device; int32_t ndim; DLDataType dtype;
    int64_t *shape, *strides; uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensor {
    DLTensor dl_tensor; void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *);
} DLManagedTensor;
typedef struct { uint32_t major, minor; } DLPackVersion;
typedef struct DLManagedTensorVersioned {
    DLPackVersion version; void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *);
    uint64_t flags; DLTensor dl_tensor;
} DLManagedTensorVersioned;

/* One allocation per capsule: the header, shape, strides and data. */
typedef struct {
    union { DLManagedTensor legacy; DLManagedTensorVersioned versioned; } header;
    int64_t shape[2], strides[2];
    double data[];
} Block;

static long deleted_count = 0;

long deleted(void) { return deleted_count; }

static void delete_legacy(DLManagedTensor *self) {
    deleted_count++;
    free(self->manager_ctx);
}

static void delete_versioned(DLManagedTensorVersioned *self) {
    deleted_count++;
    free(self->manager_ctx);
}

/* Capsule destructors as in the DLPack Python spec: a consumed ("used_")
 * capsule belongs to its consumer; an unconsumed one deletes its tensor. */
static void legacy_capsule_destructor(PyObject *capsule) {
    if (PyCapsule_IsValid(capsule, "used_dltensor")) return;
    DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
    if (!m) { PyErr_WriteUnraisable(capsule); return; }
    if (m->deleter) m->deleter(m);
}

static void versioned_capsule_destructor(PyObject *capsule) {
    if (PyCapsule_IsValid(capsule, "used_dltensor_versioned")) return;
    DLManagedTensorVersioned *m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
    if (!m) { PyErr_WriteUnraisable(capsule); return; }
    if (m->deleter) m->deleter(m);
}

/* A capsule over a C-contiguous float64 (rows, cols) matrix whose element
 * [i, j] is `offset + i * cols + j`: the block holds `offset + rows * cols`
 * doubles with value k at index k, and `byte_offset` skips the first
 * `offset` of them. `null_strides` leaves strides NULL (compact row-major).
 * `device_type` other than 1 labels the (never touched) memory as such. */
PyObject *make(int versioned, uint32_t major, uint32_t minor, uint64_t flags, int64_t rows,
               int64_t cols, int64_t offset, int null_strides, int32_t device_type) {
    int64_t count = offset + rows * cols;
    Block *block = calloc(1, sizeof(Block) + (size_t)count * sizeof(double));
    if (!block) return PyErr_NoMemory();
    for (int64_t k = 0; k < count; k++) block->data[k] = (double)k;
    block->shape[0] = rows;
    block->shape[1] = cols;
    block->strides[0] = cols;
    block->strides[1] = 1;
    DLTensor tensor = {
        .data = block->data, .device = {device_type, 0}, .ndim = 2, .dtype = {2, 64, 1},
        .shape = block->shape, .strides = null_strides ? NULL : block->strides,
        .byte_offset = (uint64_t)offset * sizeof(double),
    };
    PyObject *capsule;
    if (versioned) {
        DLManagedTensorVersioned *m = &block->header.versioned;
        m->version.major = major;
        m->version.minor = minor;
        m->manager_ctx = block;
        m->deleter = delete_versioned;
        m->flags = flags;
        m->dl_tensor = tensor;
        capsule = PyCapsule_New(m, "dltensor_versioned", versioned_capsule_destructor);
    } else {
        DLManagedTensor *m = &block->header.legacy;
        m->manager_ctx = block;
        m->deleter = delete_legacy;
        m->dl_tensor = tensor;
        capsule = PyCapsule_New(m, "dltensor", legacy_capsule_destructor);
    }
    if (!capsule) free(block);
    return capsule;
}
