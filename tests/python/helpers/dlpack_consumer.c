/* A minimal foreign DLPack consumer for lifetime tests: it takes a capsule
 * the way a C library would and calls the deleter later, from a thread that
 * does not hold the GIL (and is not even a Python thread). */
#include <Python.h>
#include <pthread.h>
#include <stdint.h>

typedef struct { int32_t device_type, device_id; } DLDevice;
typedef struct { uint8_t code, bits; uint16_t lanes; } DLDataType;
typedef struct {
    void *data; DLDevice device; int32_t ndim; DLDataType dtype;
    int64_t *shape, *strides; uint64_t byte_offset;
} DLTensor;
typedef struct { uint32_t major, minor; } DLPackVersion;
typedef struct DLManagedTensorVersioned {
    DLPackVersion version; void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *);
    uint64_t flags; DLTensor dl_tensor;
} DLManagedTensorVersioned;

static void *run_deleter(void *arg) {
    DLManagedTensorVersioned *m = arg;
    if (m->deleter) m->deleter(m);
    return NULL;
}

/* Consumes a versioned capsule (renaming it, as the spec says) and returns
 * the managed tensor's address; 0 with an exception set on failure. */
uintptr_t take(PyObject *capsule) {
    void *p = PyCapsule_GetPointer(capsule, "dltensor_versioned");
    if (!p) return 0;
    if (PyCapsule_SetName(capsule, "used_dltensor_versioned")) return 0;
    return (uintptr_t)p;
}

/* Reads one double at element `index` of a taken CPU float64 tensor. */
double read_f64(uintptr_t managed, int64_t index) {
    DLManagedTensorVersioned *m = (DLManagedTensorVersioned *)managed;
    return ((double *)((char *)m->dl_tensor.data + m->dl_tensor.byte_offset))[index];
}

/* Calls the deleter from a fresh pthread with the GIL released here. */
int delete_in_thread(uintptr_t managed) {
    pthread_t thread;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pthread_create(&thread, NULL, run_deleter, (void *)managed);
    if (rc == 0) rc = pthread_join(thread, NULL);
    Py_END_ALLOW_THREADS
    return rc;
}
