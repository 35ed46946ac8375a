// The nanobind peer of examples/extension: the same functions written the way
// a C++ extension author would with nanobind's `nb::ndarray`, so
// examples/extension/bench.py can time dlbridge, rust-numpy and nanobind side
// by side in one process. Benchmark-only: built by
// scripts/build_nanobind_peer.sh (`make bench-extension`), never by `make test`.
//
// Each function does the same work as its Rust twin, so the timings compare
// the boundary (argument import, result export), not the loop.

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace nb = nanobind;

namespace {

// Visits every element of a CPU array of any rank and strides (nanobind's
// strides count elements), in C order: sum, scale and add_one take any
// layout, as the Rust `as_ndarray` view does.
template <typename T, typename Array, typename F>
void for_each(const Array &x, F &&f) {
    T *base = (T *) ((uint8_t *) x.data_handle() + x.byte_offset());
    const size_t ndim = x.ndim();
    if (ndim == 0) {
        f(*base);
        return;
    }
    if (x.size() == 0)
        return;
    // The outer indices, advanced like an odometer; the last axis is the
    // inner loop.
    std::vector<size_t> index(ndim - 1, 0);
    const size_t inner = x.shape(ndim - 1);
    const int64_t inner_stride = x.stride(ndim - 1);
    while (true) {
        int64_t offset = 0;
        for (size_t d = 0; d + 1 < ndim; ++d)
            offset += (int64_t) index[d] * x.stride(d);
        T *row = base + offset;
        for (size_t i = 0; i < inner; ++i)
            f(row[(int64_t) i * inner_stride]);
        size_t d = ndim - 1;
        while (true) {
            if (d == 0)
                return;
            --d;
            if (++index[d] < x.shape(d))
                break;
            index[d] = 0;
        }
    }
}

template <typename T, typename Array> double sum_as(const Array &x) {
    double total = 0.0;
    for_each<T>(x, [&](T v) { total += (double) v; });
    return total;
}

template <typename T, typename Array> void add_one_as(const Array &x) {
    for_each<T>(x, [](T &v) { v = (T) (v + (T) 1); });
}

template <typename Array> void require_cpu(const Array &x, const char *fn) {
    if (x.device_type() != nb::device::cpu::value)
        throw nb::type_error(
            (std::string(fn) + ": expected a CPU array").c_str());
}

[[noreturn]] void unsupported(const char *fn) {
    throw nb::type_error((std::string(fn) + ": unsupported dtype").c_str());
}

// Calls F<T>(x) with T the C++ type of x's dtype (the Rust `dispatch!`).
#define PEER_DISPATCH(x, fn, name)                                             \
    do {                                                                       \
        const nb::dlpack::dtype dt = (x).dtype();                              \
        if (dt == nb::dtype<double>()) return fn<double>(x);                   \
        if (dt == nb::dtype<float>()) return fn<float>(x);                     \
        if (dt == nb::dtype<int64_t>()) return fn<int64_t>(x);                 \
        if (dt == nb::dtype<int32_t>()) return fn<int32_t>(x);                 \
        if (dt == nb::dtype<int16_t>()) return fn<int16_t>(x);                 \
        if (dt == nb::dtype<int8_t>()) return fn<int8_t>(x);                   \
        if (dt == nb::dtype<uint64_t>()) return fn<uint64_t>(x);               \
        if (dt == nb::dtype<uint32_t>()) return fn<uint32_t>(x);               \
        if (dt == nb::dtype<uint16_t>()) return fn<uint16_t>(x);               \
        if (dt == nb::dtype<uint8_t>()) return fn<uint8_t>(x);                 \
        if (dt == nb::dtype<bool>()) return fn<bool>(x);                       \
        unsupported(name);                                                     \
    } while (0)

double sum(const nb::ndarray<> &x) {
    require_cpu(x, "sum");
    PEER_DISPATCH(x, sum_as, "sum");
}

// `nb::ro` lets nanobind take read-only arrays (and ask producers for the
// cheaper unversioned DLPack capsule): the closest twin of dlbridge's `sum`,
// which accepts read-only inputs. Timed beside `sum` for information.
double sum_ro(const nb::ndarray<nb::ro> &x) {
    require_cpu(x, "sum_ro");
    PEER_DISPATCH(x, sum_as, "sum_ro");
}

using F64Vec = nb::ndarray<double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using F64VecRo =
    nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

double sum_f64(const F64Vec &x) {
    const double *p = x.data();
    double total = 0.0;
    for (size_t i = 0, n = x.shape(0); i < n; ++i)
        total += p[i];
    return total;
}

double sum_f64_ro(const F64VecRo &x) {
    const double *p = x.data();
    double total = 0.0;
    for (size_t i = 0, n = x.shape(0); i < n; ++i)
        total += p[i];
    return total;
}

uintptr_t data_ptr(const nb::ndarray<> &x) {
    return (uintptr_t) x.data();
}

// A new float64 buffer [0, 1, ..., n-1] owned by a capsule that frees it
// once, when the returned array (and every view of it) is gone.
double *new_arange(size_t n, nb::capsule &owner) {
    double *data = new double[n ? n : 1];
    for (size_t i = 0; i < n; ++i)
        data[i] = (double) i;
    owner = nb::capsule(data, [](void *p) noexcept { delete[] (double *) p; });
    return data;
}

nb::ndarray<nb::numpy, double, nb::ndim<1>> arange(size_t n) {
    nb::capsule owner;
    double *data = new_arange(n, owner);
    return nb::ndarray<nb::numpy, double, nb::ndim<1>>(data, {n}, owner);
}

nb::ndarray<nb::pytorch, double, nb::ndim<1>> arange_torch(size_t n) {
    nb::capsule owner;
    double *data = new_arange(n, owner);
    return nb::ndarray<nb::pytorch, double, nb::ndim<1>>(data, {n}, owner);
}

// `x * k` as a new C-contiguous NumPy array: float32 stays float32, every
// other real dtype becomes float64 (as the Rust `scale`).
template <typename Out, typename T, typename Array>
nb::ndarray<nb::numpy> scale_into(const Array &x, double k) {
    const size_t ndim = x.ndim();
    std::vector<size_t> shape(ndim);
    for (size_t d = 0; d < ndim; ++d)
        shape[d] = x.shape(d);
    const size_t n = x.size();
    Out *out = new Out[n ? n : 1];
    Out *cursor = out;
    const Out factor = (Out) k;
    for_each<T>(x, [&](T v) { *cursor++ = (Out) v * factor; });
    nb::capsule owner(out, [](void *p) noexcept { delete[] (Out *) p; });
    return nb::ndarray<nb::numpy>(out, ndim, shape.data(), owner, nullptr,
                                  nb::dtype<Out>());
}

template <typename T, typename Array>
nb::ndarray<nb::numpy> scale_as(const Array &x, double k) {
    if constexpr (std::is_same_v<T, float>)
        return scale_into<float, T>(x, k);
    else
        return scale_into<double, T>(x, k);
}

nb::ndarray<nb::numpy> scale(const nb::ndarray<nb::ro> &x, double k) {
    require_cpu(x, "scale");
    const nb::dlpack::dtype dt = x.dtype();
    if (dt == nb::dtype<double>()) return scale_as<double>(x, k);
    if (dt == nb::dtype<float>()) return scale_as<float>(x, k);
    if (dt == nb::dtype<int64_t>()) return scale_as<int64_t>(x, k);
    if (dt == nb::dtype<int32_t>()) return scale_as<int32_t>(x, k);
    if (dt == nb::dtype<int16_t>()) return scale_as<int16_t>(x, k);
    if (dt == nb::dtype<int8_t>()) return scale_as<int8_t>(x, k);
    if (dt == nb::dtype<uint64_t>()) return scale_as<uint64_t>(x, k);
    if (dt == nb::dtype<uint32_t>()) return scale_as<uint32_t>(x, k);
    if (dt == nb::dtype<uint16_t>()) return scale_as<uint16_t>(x, k);
    if (dt == nb::dtype<uint8_t>()) return scale_as<uint8_t>(x, k);
    if (dt == nb::dtype<bool>()) return scale_as<bool>(x, k);
    unsupported("scale");
}

// Adds one to every element in place; nb::ndarray<> (no nb::ro) refuses
// read-only arrays, as the Rust add_one does.
void add_one(const nb::ndarray<> &x) {
    require_cpu(x, "add_one");
    PEER_DISPATCH(x, add_one_as, "add_one");
}

} // namespace

NB_MODULE(nanobind_peer, m) {
    m.doc() = "nanobind twin of dlbridge_example (benchmark peer)";
    m.def("sum", &sum, nb::arg("x"));
    m.def("sum_ro", &sum_ro, nb::arg("x"));
    m.def("sum_f64", &sum_f64, nb::arg("x"));
    m.def("sum_f64_ro", &sum_f64_ro, nb::arg("x"));
    m.def("data_ptr", &data_ptr, nb::arg("x"));
    m.def("arange", &arange, nb::arg("n"));
    m.def("arange_torch", &arange_torch, nb::arg("n"));
    m.def("scale", &scale, nb::arg("x"), nb::arg("k"));
    m.def("add_one", &add_one, nb::arg("x"));
}
