// numpy arrays as the native core reads them: the supported dtypes (dispatched to templates),
// strided H x W x C views and per-channel clip levels. Shared by the native core's translation units.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "pixels.hpp"

namespace declip {

namespace py = pybind11;

enum class Dtype { U8, U16, F16, F32, F64 };

inline Dtype dtype_of(const py::array& a) {
    const py::dtype dt = a.dtype();
    const char kind = dt.kind();
    const auto size = dt.itemsize();
    if (kind == 'u' && size == 1) return Dtype::U8;
    if (kind == 'u' && size == 2) return Dtype::U16;
    if (kind == 'f' && size == 2) return Dtype::F16;
    if (kind == 'f' && size == 4) return Dtype::F32;
    if (kind == 'f' && size == 8) return Dtype::F64;
    throw py::type_error("unsupported dtype " + std::string(py::str(dt)) +
                         ": use uint8, uint16, float16, float32 or float64");
}

template <class T>
struct Tag {
    using type = T;
};

template <class Fn>
void dispatch(Dtype d, Fn&& fn) {
    switch (d) {
        case Dtype::U8: return fn(Tag<uint8_t>{});
        case Dtype::U16: return fn(Tag<uint16_t>{});
        case Dtype::F16: return fn(Tag<Half>{});
        case Dtype::F32: return fn(Tag<float>{});
        case Dtype::F64: return fn(Tag<double>{});
    }
}

inline View view_of(const py::array& a, bool writable, const char* what) {
    if (a.ndim() != 3) throw py::value_error(std::string(what) + " must be H x W x C");
    if (writable && !a.writeable()) throw py::value_error(std::string(what) + " is read-only");
    View v;
    v.data = static_cast<char*>(const_cast<void*>(a.data()));
    v.h = static_cast<long>(a.shape(0));
    v.w = static_cast<long>(a.shape(1));
    v.c = static_cast<long>(a.shape(2));
    v.sy = static_cast<long>(a.strides(0));
    v.sx = static_cast<long>(a.strides(1));
    v.sc = static_cast<long>(a.strides(2));
    if (v.c != 1 && v.c != 3) throw py::value_error(std::string(what) + " must have 1 or 3 colour channels");
    return v;
}

// Per-channel clip thresholds: at or above `high`, at or below `low` (tolerance * range inside).
struct Levels {
    double low[3]{}, high[3]{}, range[3]{}, scale[3]{}, at_high[3]{}, at_low[3]{};
    int channels = 3;

    Levels(const std::vector<double>& lo, const std::vector<double>& hi, double tolerance, long c) {
        if (static_cast<long>(lo.size()) != c || static_cast<long>(hi.size()) != c)
            throw py::value_error("need one low and one high clip level per colour channel");
        channels = static_cast<int>(c);
        for (int i = 0; i < channels; ++i) {
            low[i] = lo[i];
            high[i] = hi[i];
            range[i] = hi[i] - lo[i];
            scale[i] = 1.0 / range[i];
            const double tol = tolerance * range[i];
            at_high[i] = hi[i] - tol;
            at_low[i] = lo[i] + tol;
        }
    }

    // Bits 0-2: channel clipped high; bits 3-5: clipped low. C: the channel count, known at
    // compile time in the hot loops.
    template <int C>
    uint8_t code_of(const double* v) const {
        uint8_t out = 0;
        for (int i = 0; i < C; ++i) {
            out |= static_cast<uint8_t>((v[i] >= at_high[i]) << i);
            out |= static_cast<uint8_t>((v[i] <= at_low[i]) << (3 + i));
        }
        return out;
    }

    uint8_t code(const double* v) const { return channels == 1 ? code_of<1>(v) : code_of<3>(v); }
};

template <class T>
inline void load_pixel(const View& v, long y, long x, double* out) {
    for (long c = 0; c < v.c; ++c) out[c] = load<T>(v.at(y, x, c));
}

// Threads the native loops use unless a call asks for another number (set_threads; defined in
// native.cpp).
int default_threads();

// A caller's clip codes: a C-contiguous H x W uint8 array of the image's size.
inline const uint8_t* codes_of(const py::array& codes, const View& v) {
    if (!py::isinstance<py::array_t<uint8_t>>(codes) || !(codes.flags() & py::array::c_style) || codes.ndim() != 2 ||
        codes.shape(0) != v.h || codes.shape(1) != v.w)
        throw py::value_error("codes must be a C-contiguous H x W uint8 array of the image's size");
    return static_cast<const uint8_t*>(codes.data());
}

// A classical estimate at every clipped pixel: (flat indices int64, model-space values n x 3 float64).
// method.template run<T>(index, out) fills the values, for the pixel type T of the image.
template <class Method>
std::tuple<py::array_t<int64_t>, py::array_t<double>> estimate_at_clipped(Method& method, const py::array& image,
                                                                          const uint8_t* codes, const View& v,
                                                                          int threads) {
    const Dtype dt = dtype_of(image);
    std::unique_ptr<ClippedIndex> index;
    {
        py::gil_scoped_release release;
        index = std::make_unique<ClippedIndex>(codes, v.h, v.w, threads);
    }
    const long n = index->size();
    py::array_t<int64_t> pixels(n);
    py::array_t<double> values({n, 3L});
    int64_t* at = pixels.mutable_data();
    double* dst = values.mutable_data();
    {
        py::gil_scoped_release release;
        index->flat(at, threads);
        dispatch(dt, [&](auto tag) { method.template run<typename decltype(tag)::type>(*index, dst); });
    }
    return {pixels, values};
}

}  // namespace declip
