/* A plain C buffer consumer for the buffer-protocol tests: it calls
 * PyObject_GetBuffer with exactly the flags it is given, reports what the
 * exporter filled in, and releases the view at once.
 *
 * getbuffer(obj, flags) returns a dict:
 *   on success: buf (int), len, itemsize, readonly, ndim, format (str or
 *     None), shape / strides (tuples or None), suboffsets_null, obj_is_exporter,
 *     contiguous_c / contiguous_f / contiguous_any (PyBuffer_IsContiguous),
 *     obj_null_after_release;
 *   on failure: error (the exception instance) and obj_null (whether the
 *     exporter left view.obj NULL, as PEP 3118 requires).
 */
#include <Python.h>
#include <string.h>

#define SENTINEL ((PyObject *)0x1) /* never dereferenced, only compared */

static PyObject *ssize_tuple(const Py_ssize_t *values, int n) {
    PyObject *tuple = PyTuple_New(n);
    if (!tuple) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *item = PyLong_FromSsize_t(values[i]);
        if (!item) { Py_DECREF(tuple); return NULL; }
        PyTuple_SET_ITEM(tuple, i, item);
    }
    return tuple;
}

static PyObject *fetch_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

PyObject *getbuffer(PyObject *obj, int flags) {
    Py_buffer view;
    memset(&view, 0, sizeof view);
    view.obj = SENTINEL;
    if (PyObject_GetBuffer(obj, &view, flags) < 0) {
        PyObject *error = fetch_exception();
        if (!error) return NULL;
        return Py_BuildValue("{s:N,s:O}", "error", error, "obj_null", view.obj == NULL ? Py_True : Py_False);
    }
    PyObject *shape = NULL, *strides = NULL, *format = NULL;
    if (view.shape) shape = ssize_tuple(view.shape, view.ndim);
    else shape = Py_NewRef(Py_None);
    if (view.strides) strides = ssize_tuple(view.strides, view.ndim);
    else strides = Py_NewRef(Py_None);
    if (view.format) format = PyUnicode_FromString(view.format);
    else format = Py_NewRef(Py_None);
    PyObject *result = NULL;
    if (shape && strides && format) {
        result = Py_BuildValue(
            "{s:N,s:n,s:n,s:O,s:i,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}",
            "buf", PyLong_FromVoidPtr(view.buf),
            "len", view.len,
            "itemsize", view.itemsize,
            "readonly", view.readonly ? Py_True : Py_False,
            "ndim", view.ndim,
            "format", format,
            "shape", shape,
            "strides", strides,
            "suboffsets_null", view.suboffsets == NULL ? Py_True : Py_False,
            "obj_is_exporter", view.obj == obj ? Py_True : Py_False,
            "contiguous_c", PyBuffer_IsContiguous(&view, 'C') ? Py_True : Py_False,
            "contiguous_f", PyBuffer_IsContiguous(&view, 'F') ? Py_True : Py_False,
            "contiguous_any", PyBuffer_IsContiguous(&view, 'A') ? Py_True : Py_False);
    }
    Py_XDECREF(shape);
    Py_XDECREF(strides);
    Py_XDECREF(format);
    PyBuffer_Release(&view);
    if (result) {
        PyObject *released = view.obj == NULL ? Py_True : Py_False;
        if (PyDict_SetItemString(result, "obj_null_after_release", released) < 0) Py_CLEAR(result);
    }
    return result;
}
