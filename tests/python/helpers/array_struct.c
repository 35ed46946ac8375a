/* An __array_struct__ producer in the style of NumPy's test_cstruct: each
 * capsule holds a malloc'd PyArrayInterface (with its shape and strides in the
 * same block) describing separately malloc'd data. The capsule destructor
 * poisons the data (0xAB), frees it and the block, drops the descr reference
 * and counts itself, so a consumer that lets the capsule die while it still
 * reads the memory sees garbage, and one that never lets it die is caught by
 * the counter.
 *
 * new_struct(nd, shape, strides, typekind, itemsize, flags, nbytes, two,
 *            descr, named, null_data, value)
 *   nd entries of shape and strides are copied (strides may be NULL, then the
 *   struct's strides are NULL); nbytes of data are allocated (unless
 *   null_data) and filled with `value` as doubles when typekind/itemsize is
 *   f8, with zeros otherwise; descr (may be NULL) is stored with a new
 *   reference; a nonzero `named` gives the capsule a name (an invalid
 *   __array_struct__). The returned capsule is a new reference.
 * destroyed(): capsule destructors run so far.  created(): capsules made.
 */
#include <Python.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int two;
    int nd;
    char typekind;
    int itemsize;
    int flags;
    Py_intptr_t *shape;
    Py_intptr_t *strides;
    void *data;
    PyObject *descr;
} PyArrayInterface;

typedef struct {
    PyArrayInterface inter;
    size_t nbytes;
    Py_intptr_t dims[]; /* shape then strides */
} Block;

static const char NAME[] = "not_an_array_struct";
static long destroyed_count = 0;
static long created_count = 0;

long destroyed(void) { return destroyed_count; }
long created(void) { return created_count; }

static void destroy(PyObject *capsule) {
    /* The name is whatever this capsule was made with, so this cannot fail
     * (and so never touches an exception that may be in flight). */
    Block *block = PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule));
    if (block == NULL) {
        return;
    }
    if (block->inter.data != NULL) {
        memset(block->inter.data, 0xAB, block->nbytes);
        free(block->inter.data);
    }
    Py_XDECREF(block->inter.descr);
    free(block);
    destroyed_count++;
}

PyObject *new_struct(int nd, const Py_ssize_t *shape, const Py_ssize_t *strides, char typekind, int itemsize,
                     int flags, Py_ssize_t nbytes, int two, PyObject *descr, int named, int null_data,
                     double value) {
    int dims = nd > 0 ? nd : 0;
    Block *block = malloc(sizeof(Block) + 2 * (size_t)dims * sizeof(Py_intptr_t) + 1);
    if (block == NULL) {
        return PyErr_NoMemory();
    }
    block->inter.two = two;
    block->inter.nd = nd;
    block->inter.typekind = typekind;
    block->inter.itemsize = itemsize;
    block->inter.flags = flags;
    block->inter.shape = block->dims;
    block->inter.strides = strides != NULL ? block->dims + dims : NULL;
    for (int i = 0; i < dims; i++) {
        block->dims[i] = shape[i];
        if (strides != NULL) {
            block->dims[dims + i] = strides[i];
        }
    }
    block->nbytes = (size_t)nbytes;
    block->inter.data = NULL;
    if (!null_data) {
        block->inter.data = calloc(1, nbytes > 0 ? (size_t)nbytes : 1);
        if (block->inter.data == NULL) {
            free(block);
            return PyErr_NoMemory();
        }
        if (typekind == 'f' && itemsize == 8) {
            double *values = block->inter.data;
            for (Py_ssize_t i = 0; i < nbytes / 8; i++) {
                values[i] = value;
            }
        }
    }
    Py_XINCREF(descr);
    block->inter.descr = descr;
    PyObject *capsule = PyCapsule_New(block, named ? NAME : NULL, destroy);
    if (capsule == NULL) {
        Py_XDECREF(descr);
        free(block->inter.data);
        free(block);
        return NULL;
    }
    created_count++;
    return capsule;
}
