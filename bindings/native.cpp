// libdeclip._native: the pixel loops around the model (clip detection, feather weights, colour
// conversion into and out of model space, tile gather/scatter, fit policy), working directly on
// numpy buffers of any supported dtype and layout, without the GIL and on several threads.
//
// Every function mirrors a numpy reference in tests/reference.py, which the tests compare it with.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "arrays.hpp"
#include "colour.hpp"
#include "pixels.hpp"

namespace py = pybind11;
using namespace declip;

void register_opposed(pybind11::module_& m);        // bindings/opposed.cpp
void register_cross_channel(pybind11::module_& m);  // bindings/cross_channel.cpp
void register_specks(pybind11::module_& m);         // bindings/specks.cpp

namespace {

int g_threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
constexpr int kMaxFeather = 254;  // distances are bytes

void check_feather(int radius) {
    if (radius < 0 || radius > kMaxFeather)
        throw py::value_error("feather radius must be between 0 and " + std::to_string(kMaxFeather) + " pixels");
}

// Clip codes of rows [y0, y1) and columns [x0, x1), written by emit(row, col, code) (row and col
// relative to y0, x0). Specialised on the channel count, walking each row by its strides.
template <class T, int C, class Emit>
void codes_rows(const View& v, const Levels& lv, long y0, long y1, long x0, long x1, int threads, Emit&& emit) {
    parallel_rows(y1 - y0, threads, [&](long b, long e) {
        for (long r = b; r < e; ++r) {
            const char* p = v.at(y0 + r, x0, 0);
            double px[C];
            for (long x = 0; x < x1 - x0; ++x, p += v.sx) {
                for (int c = 0; c < C; ++c) px[c] = load<T>(p + c * v.sc);
                emit(r, x, lv.code_of<C>(px));
            }
        }
    });
}

template <class T, class Emit>
void for_codes(const View& v, const Levels& lv, long y0, long y1, long x0, long x1, int threads, Emit&& emit) {
    if (v.c == 1)
        codes_rows<T, 1>(v, lv, y0, y1, x0, x1, threads, emit);
    else
        codes_rows<T, 3>(v, lv, y0, y1, x0, x1, threads, emit);
}

// Clip codes of the rectangle [y0, y1) x [x0, x1) into `codes` (row-major, its width).
template <class T>
void codes_into(const View& v, const Levels& lv, long y0, long y1, long x0, long x1, uint8_t* codes,
                int threads) {
    const long w = x1 - x0;
    for_codes<T>(v, lv, y0, y1, x0, x1, threads, [&](long r, long x, uint8_t code) { codes[r * w + x] = code; });
}

// Chessboard (L-infinity) distance to the nearest set (nonzero) pixel, capped at `cap` (<= 255), handed
// row by row to emit(y, distances). The metric is separable: each row's distance to its nearest set
// pixel along the row, then, per pixel, the minimum over rows |dy| < cap of max(|dy|, that row's
// distance). Each thread takes a band of rows and works through it in blocks small enough to stay in
// cache: the row distances of a block and its `cap - 1` rows above and below, then the block's output
// rows.
// One row's distance along the row to its nearest set pixel, capped at `top`. Plain arguments and
// restrict pointers: byte stores could otherwise alias captured values, which keeps the compiler
// from vectorising the loops. Each offset dx looks both ways in one pass where both neighbours
// exist.
inline void row_distance(const uint8_t* __restrict set, uint8_t* __restrict dist, long w, uint8_t top) {
    for (long x = 0; x < w; ++x) dist[x] = set[x] ? 0 : top;
    for (long dx = 1; dx < top && dx < w; ++dx) {
        const uint8_t step = static_cast<uint8_t>(dx);
        const long both_from = dx, both_to = w - dx;  // [dx, w - dx): a neighbour on each side
        for (long x = 0; x < std::min(dx, both_to); ++x) dist[x] = std::min(dist[x], set[x + dx] ? step : top);
        for (long x = both_from; x < both_to; ++x)
            dist[x] = std::min(dist[x], (set[x - dx] | set[x + dx]) ? step : top);
        for (long x = std::max(dx, both_to); x < w; ++x) dist[x] = std::min(dist[x], set[x - dx] ? step : top);
    }
}

// dist = min(dist, max(row, step)): a row `step` rows away reaching this one.
inline void reach_from_row(const uint8_t* __restrict row, uint8_t* __restrict dist, long w, uint8_t step) {
    for (long x = 0; x < w; ++x) dist[x] = std::min(dist[x], std::max(row[x], step));
}

// The same for the two rows `step` above and below, in one pass.
inline void reach_from_rows(const uint8_t* __restrict above, const uint8_t* __restrict below,
                            uint8_t* __restrict dist, long w, uint8_t step) {
    for (long x = 0; x < w; ++x) dist[x] = std::min(dist[x], std::max(std::min(above[x], below[x]), step));
}

template <class Emit>
void chessboard_distance(const uint8_t* set, long h, long w, int cap, int threads, Emit&& emit) {
    const uint8_t top = static_cast<uint8_t>(cap);
    const long reach = cap - 1;  // rows above and below that can reach a row
    const long block = std::max(16L, std::min(256L, (1L << 19) / std::max(1L, w)));
    parallel_rows(h, threads, [&](long b, long e) {
        std::vector<uint8_t> across(static_cast<size_t>((block + 2 * reach) * w));
        std::vector<uint8_t> out(static_cast<size_t>(w));
        for (long y0 = b; y0 < e; y0 += block) {
            const long y1 = std::min(e, y0 + block);
            const long a0 = std::max(0L, y0 - reach), a1 = std::min(h, y1 + reach);
            for (long y = a0; y < a1; ++y) row_distance(set + y * w, &across[static_cast<size_t>((y - a0) * w)], w, top);
            for (long y = y0; y < y1; ++y) {
                std::copy_n(&across[static_cast<size_t>((y - a0) * w)], w, out.data());
                for (long dy = 1; dy <= reach; ++dy) {
                    const uint8_t step = static_cast<uint8_t>(dy);
                    const bool up = y - dy >= a0, down = y + dy < a1;  // rows outside the image do not exist
                    const uint8_t* above = up ? &across[static_cast<size_t>((y - dy - a0) * w)] : nullptr;
                    const uint8_t* below = down ? &across[static_cast<size_t>((y + dy - a0) * w)] : nullptr;
                    if (up && down)
                        reach_from_rows(above, below, out.data(), w, step);
                    else if (up || down)
                        reach_from_row(up ? above : below, out.data(), w, step);
                }
                emit(y, out.data());
            }
        }
    });
}

// 1 - d / (radius + 1) at chessboard distance 1 <= d <= radius from a set pixel, else 0; computed in
// double and stored as float32 (tests/reference.py does the same).
float feather_weight(int d, int radius) {
    return (d >= 1 && d <= radius)
               ? static_cast<float>(1.0 - static_cast<double>(d) / static_cast<double>(radius + 1))
               : 0.0f;
}

// The weight of every distance 0..255 for one radius: a byte-indexed lookup for the row loops.
struct FeatherTable {
    int radius;
    float weight[256];
    explicit FeatherTable(int r) : radius(r) {
        for (int d = 0; d < 256; ++d) weight[d] = feather_weight(d, r);
    }

    // weights[x] = weight of distances[x], for a row of w pixels. Most pixels are far from any
    // clipped one (or clipped): 16 at a time are checked for the band 1..radius and, outside it,
    // stored as zeros without a lookup.
    void row(const uint8_t* __restrict distances, float* __restrict weights, long w) const {
        if (radius == 0) {
            std::fill_n(weights, w, 0.0f);
            return;
        }
        long x = 0;
#if defined(__SSE2__)
        {
            const __m128i one = _mm_set1_epi8(1), last = _mm_set1_epi8(static_cast<char>(radius - 1));
            const __m128 zero = _mm_setzero_ps();
            for (; x + 16 <= w; x += 16) {
                // unsigned d - 1 <= radius - 1: the band (d = 0 wraps round to 255)
                const __m128i d = _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(distances + x)), one);
                const __m128i in_band = _mm_cmpeq_epi8(_mm_max_epu8(d, last), last);
                if (_mm_movemask_epi8(in_band) == 0) {
                    for (int k = 0; k < 16; k += 4) _mm_storeu_ps(weights + x + k, zero);
                } else {
                    for (int k = 0; k < 16; ++k) weights[x + k] = weight[distances[x + k]];
                }
            }
        }
#endif
        for (; x < w; ++x) weights[x] = weight[distances[x]];
    }
};

// Which values of a core change, and the blend weight of each pixel: recomputed identically by
// `recover` and `write_core`, so nothing per tile has to be stored between the two passes.
struct CoreMask {
    std::vector<uint8_t> codes;   // core-sized clip codes
    std::vector<float> weights;  // core-sized feather weights (empty when radius is 0)

    // `given`: the caller's image-sized H x W clip codes (a RAW's mask from its photosites), used
    // instead of codes computed from the values; null to compute them.
    template <class T>
    static CoreMask build(const View& v, const Levels& lv, long y0, long y1, long x0, long x1, int radius,
                          int threads, const uint8_t* given = nullptr) {
        CoreMask m;
        const long h = y1 - y0, w = x1 - x0;
        const auto codes_of = [&](long a0, long a1, long b0, long b1, uint8_t* dst) {
            if (given == nullptr) return codes_into<T>(v, lv, a0, a1, b0, b1, dst, threads);
            for (long r = a0; r < a1; ++r) std::copy(given + r * v.w + b0, given + r * v.w + b1, dst + (r - a0) * (b1 - b0));
        };
        if (radius <= 0) {
            m.codes.resize(static_cast<size_t>(h * w));
            codes_of(y0, y1, x0, x1, m.codes.data());
            return m;
        }
        // Clipped pixels up to `radius` outside the core reach into it.
        const long gy0 = std::max(0L, y0 - radius), gy1 = std::min(v.h, y1 + radius);
        const long gx0 = std::max(0L, x0 - radius), gx1 = std::min(v.w, x1 + radius);
        const long gh = gy1 - gy0, gw = gx1 - gx0;
        std::vector<uint8_t> grown(static_cast<size_t>(gh * gw));
        codes_of(gy0, gy1, gx0, gx1, grown.data());
        m.codes.resize(static_cast<size_t>(h * w));
        m.weights.resize(static_cast<size_t>(h * w));
        for (long r = 0; r < h; ++r)
            std::copy_n(&grown[static_cast<size_t>((y0 - gy0 + r) * gw + (x0 - gx0))], w, &m.codes[r * w]);
        // a pixel with any nonzero code is a clipped pixel, which is what the distance counts from
        const FeatherTable table(radius);
        chessboard_distance(grown.data(), gh, gw, radius + 1, threads, [&](long gy, const uint8_t* d) {
            const long r = gy - (y0 - gy0);
            if (r < 0 || r >= h) return;
            table.row(d + (x0 - gx0), &m.weights[static_cast<size_t>(r * w)], w);
        });
        return m;
    }

    // Bit c set when channel c changes: clipped, or blended in the feather band.
    uint8_t changed(long i, int channels) const {
        const uint8_t c = codes[i];
        uint8_t ch = static_cast<uint8_t>((c | (c >> 3)) & 7);
        if (!weights.empty() && weights[i] > 0) ch = static_cast<uint8_t>((1u << channels) - 1);
        return ch;
    }
};

Curve make_curve(int kind, const std::vector<double>& params, const std::vector<double>& xs,
                 const std::vector<double>& ys) {
    Curve c;
    c.kind = kind;
    if (kind == Curve::Parametric) {
        if (params.size() != 8) throw py::value_error("a parametric curve takes g, a, b, c, d, e, f, y_at_d");
        c.g = params[0], c.a = params[1], c.b = params[2], c.c = params[3];
        c.d = params[4], c.e = params[5], c.f = params[6], c.y_at_d = params[7];
    } else if (kind == Curve::Table) {
        if (xs.size() < 2 || xs.size() != ys.size() || params.size() != 1)
            throw py::value_error("a table curve takes equal-length xs and ys (2 or more) and its slope above 1");
        c.xs = xs, c.ys = ys, c.slope_hi = params[0];
    } else if (kind != Curve::Linear) {
        throw py::value_error("unknown curve kind " + std::to_string(kind));
    }
    return c;
}

std::array<double, 9> matrix9(const std::vector<double>& m) {
    if (m.size() != 9) throw py::value_error("a 3 x 3 matrix needs 9 numbers (row-major)");
    std::array<double, 9> out{};
    std::copy(m.begin(), m.end(), out.begin());
    return out;
}

// ------------------------------------------------------------------------------- functions

// Thresholds in the pixels' own type, deciding exactly what the comparison in double decides:
// integers compare against the rounded level, floats against the nearest float on the right side.
template <class T>
struct NativeThreshold {
    using type = std::conditional_t<std::is_integral_v<T>, int32_t, T>;

    static type at_least(double t) {  // v >= t  <=>  v >= at_least(t)
        if constexpr (std::is_integral_v<T>) {
            return static_cast<int32_t>(std::min(std::max(std::ceil(t), -1.0), 65536.0));
        } else {
            T f = static_cast<T>(t);
            if (static_cast<double>(f) < t) f = std::nextafter(f, std::numeric_limits<T>::infinity());
            return f;
        }
    }

    static type at_most(double t) {  // v <= t  <=>  v <= at_most(t)
        if constexpr (std::is_integral_v<T>) {
            return static_cast<int32_t>(std::min(std::max(std::floor(t), -1.0), 65536.0));
        } else {
            T f = static_cast<T>(t);
            if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<T>::infinity());
            return f;
        }
    }
};

// Clip masks of an image whose rows are contiguous (pixel after pixel, channel after channel):
// each row is compared value by value against thresholds laid out like the row, a loop the
// compiler vectorises.
template <class T>
void masks_of_contiguous_rows(const View& v, const Levels& lv, bool* hp, bool* lp, int threads) {
    using N = NativeThreshold<T>;
    using Thr = typename N::type;
    const long n = v.w * v.c;
    std::vector<Thr> at_high(static_cast<size_t>(n)), at_low(static_cast<size_t>(n));
    for (long i = 0; i < n; ++i) {
        at_high[i] = N::at_least(lv.at_high[i % v.c]);
        at_low[i] = N::at_most(lv.at_low[i % v.c]);
    }
    const Thr* th = at_high.data();
    const Thr* tl = at_low.data();
    parallel_rows(v.h, threads, [&](long b, long e) {
        for (long y = b; y < e; ++y) {
            const T* row = reinterpret_cast<const T*>(v.data + y * v.sy);
            bool* hr = hp + y * n;
            bool* lr = lp + y * n;
            for (long i = 0; i < n; ++i) {
                const Thr value = static_cast<Thr>(row[i]);
                hr[i] = value >= th[i];
                lr[i] = value <= tl[i];
            }
        }
    });
}

// Boolean H x W x C masks of values clipped high and low.
std::tuple<py::array_t<bool>, py::array_t<bool>> clip_masks(const py::array& image, const std::vector<double>& low,
                                                           const std::vector<double>& high, double tolerance) {
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, tolerance, v.c);
    py::array_t<bool> hi({v.h, v.w, v.c}), lo({v.h, v.w, v.c});
    bool* hp = hi.mutable_data();
    bool* lp = lo.mutable_data();
    const Dtype dt = dtype_of(image);
    const long c = v.c, w = v.w;
    {
        py::gil_scoped_release release;
        dispatch(dt, [&](auto tag) {
            using T = typename decltype(tag)::type;
            if constexpr (!std::is_same_v<T, Half>) {
                if (v.sc == static_cast<long>(sizeof(T)) && v.sx == c * v.sc) {
                    masks_of_contiguous_rows<T>(v, lv, hp, lp, g_threads);
                    return;
                }
            }
            for_codes<T>(v, lv, 0, v.h, 0, v.w, g_threads, [&](long r, long x, uint8_t code) {
                const long i = (r * w + x) * c;
                for (long k = 0; k < c; ++k) {
                    hp[i + k] = code >> k & 1;
                    lp[i + k] = code >> (3 + k) & 1;
                }
            });
        });
    }
    return {hi, lo};
}

// The classical methods' new values (libdeclip.classic) at the clipped pixels (flat indices, ascending):
// each channel its code marks clipped takes the estimate `rec` (n x 3, clip-normalised, in the picture's
// encoding; a grey picture takes their mean), with the consistency constraint never below the recorded
// value where clipped high and never above where clipped low; the other channels keep the recorded
// value, clip-normalised. Returns (n x C float64 values, n x C bool: which the codes mark clipped).
std::tuple<py::array_t<double>, py::array_t<bool>> clipped_values(
        const py::array& image, const std::vector<double>& low, const std::vector<double>& high,
        const py::array& codes, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& pixels,
        const py::array_t<double, py::array::c_style | py::array::forcecast>& rec, bool consistency) {
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, 0.0, v.c);
    const uint8_t* code = codes_of(codes, v);
    const long n = static_cast<long>(pixels.size());
    if (rec.ndim() != 2 || rec.shape(0) != n || rec.shape(1) != 3)
        throw py::value_error("rec must be n x 3, one row per clipped pixel");
    const int64_t* at = pixels.data();
    const double* r = rec.data();
    const long c = v.c, size = v.h * v.w;
    py::array_t<double> values({n, c});
    py::array_t<bool> changing({n, c});
    double* dst = values.mutable_data();
    bool* mark = changing.mutable_data();
    for (long i = 0; i < n; ++i)
        if (at[i] < 0 || at[i] >= size) throw py::value_error("pixel index outside the image");
    const Dtype dt = dtype_of(image);
    py::gil_scoped_release release;
    dispatch(dt, [&](auto tag) {
        using T = typename decltype(tag)::type;
        for (long i = 0; i < n; ++i) {
            const long p = static_cast<long>(at[i]);
            double px[3];
            load_pixel<T>(v, p / v.w, p % v.w, px);
            const uint8_t bits = code[p];
            const double* ri = r + 3 * i;
            for (long k = 0; k < c; ++k) {
                // as numpy does it: (value - low) / (high - low); a grey pixel's estimate, the mean
                const double x = (px[k] - lv.low[k]) / lv.range[k];
                const double e = c == 1 ? (ri[0] + ri[1] + ri[2]) / 3.0 : ri[k];
                const bool hi = (bits >> k) & 1, lo = (bits >> (3 + k)) & 1;
                double out = x;
                if (consistency) {
                    if (hi) out = std::max(e, out);
                    if (lo) out = std::min(e, out);
                } else if (hi || lo) {
                    out = e;
                }
                dst[i * c + k] = out;
                mark[i * c + k] = hi || lo;
            }
        }
    });
    return {values, changing};
}

// The H x W clip codes of the whole image at once (bit k: channel k clipped high, bit 3 + k: low),
// which plan the model's windows and pick out the specks: a byte a pixel instead of two masks of
// C bools.
py::array_t<uint8_t> clip_codes(const py::array& image, const std::vector<double>& low,
                                const std::vector<double>& high, double tolerance, int threads) {
    threads = threads > 0 ? threads : g_threads;
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, tolerance, v.c);
    py::array_t<uint8_t> codes({v.h, v.w});
    uint8_t* out = codes.mutable_data();
    const Dtype dt = dtype_of(image);
    const long w = v.w;
    {
        py::gil_scoped_release release;
        dispatch(dt, [&](auto tag) {
            using T = typename decltype(tag)::type;
            codes_into<T>(v, lv, 0, v.h, 0, w, out, threads);
        });
    }
    return codes;
}

bool any_clipped(const py::array& image, const std::vector<double>& low, const std::vector<double>& high,
                 double tolerance) {
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, tolerance, v.c);
    const Dtype dt = dtype_of(image);
    bool found = false;
    py::gil_scoped_release release;
    dispatch(dt, [&](auto tag) {
        using T = typename decltype(tag)::type;
        double px[3];
        for (long y = 0; y < v.h && !found; ++y)
            for (long x = 0; x < v.w; ++x) {
                load_pixel<T>(v, y, x, px);
                if (lv.code(px)) {
                    found = true;
                    break;
                }
            }
    });
    return found;
}

py::array_t<float> feather_weights(const py::array_t<bool, py::array::c_style | py::array::forcecast>& clipped,
                                   int radius) {
    if (clipped.ndim() != 2) throw py::value_error("the clipped-pixel mask must be H x W");
    check_feather(radius);
    const long h = static_cast<long>(clipped.shape(0)), w = static_cast<long>(clipped.shape(1));
    // numpy.empty: large arrays get transparent huge pages from numpy's allocator, and every value
    // is written below, so nothing is zeroed twice.
    py::array_t<float> out = py::module_::import("numpy").attr("empty")(py::make_tuple(h, w), "float32");
    // numpy bools are bytes holding 0 or 1
    const uint8_t* set = reinterpret_cast<const uint8_t*>(clipped.data());
    float* dst = out.mutable_data();
    py::gil_scoped_release release;
    const FeatherTable table(radius);
    chessboard_distance(set, h, w, radius + 1, g_threads, [&](long y, const uint8_t* d) { table.row(d, dst + y * w, w); });
    return out;
}

// Values (..., 3) float64 -> model space (or back), float64, in place on a copy.
py::array_t<double> convert(const py::array_t<double, py::array::c_style | py::array::forcecast>& rgb,
                            const Space& space, bool into_model) {
    if (rgb.ndim() < 1 || rgb.shape(rgb.ndim() - 1) != 3) throw py::value_error("expected (..., 3) values");
    py::array_t<double> out(std::vector<py::ssize_t>(rgb.shape(), rgb.shape() + rgb.ndim()));
    const double* src = rgb.data();
    double* dst = out.mutable_data();
    const long n = static_cast<long>(rgb.size() / 3);
    py::gil_scoped_release release;
    parallel_rows(n, g_threads, [&](long b, long e) {
        double planes[3][kBatch];
        const Space::Planes p = {planes[0], planes[1], planes[2]};
        for (long s = b; s < e; s += kBatch) {
            const long m = std::min(kBatch, e - s);
            for (long i = 0; i < m; ++i)
                for (int k = 0; k < 3; ++k) planes[k][i] = src[3 * (s + i) + k];
            into_model ? space.to_model(p, m) : space.from_model(p, m);
            for (long i = 0; i < m; ++i)
                for (int k = 0; k < 3; ++k) dst[3 * (s + i) + k] = planes[k][i];
        }
    });
    return out;
}

// The fit policies (libdeclip/fit.py), on clip-normalised values.
struct Fit {
    int policy;  // 0 compress, 1 clamp, 2 float
    double vmin, vmax, knee, toe;

    static double shoulder(double v, double knee, double vmax) {
        const double head = 1.0 - knee;
        const double big = (vmax - knee) / head;
        const double u = std::max(v - knee, 0.0) / head;
        return v > knee ? knee + head * u / (1.0 + u * (1.0 - 1.0 / big)) : v;
    }

    double operator()(double x) const {
        if (policy == 2) return x;
        if (policy == 1) return std::min(std::max(x, 0.0), 1.0);
        double out = x;
        if (vmax > 1.0) out = shoulder(out, knee, vmax);
        if (vmin < 0.0 && out < toe) out = 1.0 - shoulder(1.0 - out, 1.0 - toe, 1.0 - vmin);
        return std::min(std::max(out, 0.0), 1.0);
    }
};

Fit make_fit(int policy, double vmin, double vmax, double knee, double toe) {
    if (policy < 0 || policy > 2) throw py::value_error("fit policy must be 0 (compress), 1 (clamp) or 2 (float)");
    if (policy == 0 && !(0.0 < toe && toe < knee && knee < 1.0))
        throw py::value_error("need 0 < toe < knee < 1");
    return Fit{policy, vmin, vmax, knee, toe};
}

py::array_t<double> apply_fit(const py::array_t<double, py::array::c_style | py::array::forcecast>& values,
                              int policy, double vmin, double vmax, double knee, double toe) {
    const Fit fit = make_fit(policy, vmin, vmax, knee, toe);
    py::array_t<double> out(std::vector<py::ssize_t>(values.shape(), values.shape() + values.ndim()));
    const double* src = values.data();
    double* dst = out.mutable_data();
    const long n = static_cast<long>(values.size());
    py::gil_scoped_release release;
    for (long i = 0; i < n; ++i) dst[i] = fit(src[i]);
    return out;
}

// Index i of an axis of length n padded symmetrically (numpy.pad "symmetric": edge repeated, and
// periodic with period 2n when the padding is longer than the axis).
inline long symmetric(long i, long n) {
    if (i < n) return i;
    const long k = i % (2 * n);
    return k < n ? k : 2 * n - 1 - k;
}

// A mask-input model's clip planes of the window [wy0, wy1) x [wx0, wx1), from the run's clip codes,
// as 3 x h x w float32: +1 where a channel is clipped high, -1 low, 0 elsewhere (both: 0), padded past
// the bottom/right edge as gather pads the pixels; a grey image's one channel goes to all three planes.
void mask_planes(const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& codes, int channels,
                 long wy0, long wy1, long wx0, long wx1, py::array& out) {
    if (codes.ndim() != 2) throw py::value_error("clip codes must be H x W uint8");
    if (channels != 1 && channels != 3) throw py::value_error("channels must be 1 or 3");
    const long ih = static_cast<long>(codes.shape(0)), iw = static_cast<long>(codes.shape(1));
    const long h = wy1 - wy0, w = wx1 - wx0;
    if (!py::isinstance<py::array_t<float>>(out) || !(out.flags() & py::array::c_style) || !out.writeable() ||
        out.ndim() != 3 || out.shape(0) != 3 || out.shape(1) != h || out.shape(2) != w)
        throw py::value_error("out must be a writable C-contiguous 3 x h x w float32 array of the window's size");
    if (wy0 < 0 || wx0 < 0 || wy0 >= ih || wx0 >= iw || h <= 0 || w <= 0)
        throw py::value_error("window must start inside the image and be non-empty");
    const uint8_t* src = codes.data();
    float* dst = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    float table[256][3];
    for (int code = 0; code < 256; ++code)
        for (int k = 0; k < 3; ++k) {
            const int c = channels == 1 ? 0 : k;
            table[code][k] = static_cast<float>(((code >> c) & 1) - ((code >> (3 + c)) & 1));
        }
    const long inside = std::min(w, iw - wx0);
    for (long r = 0; r < h; ++r) {
        const uint8_t* row = src + symmetric(wy0 + r, ih) * iw;
        float* d0 = dst + r * w;
        float* d1 = dst + (h + r) * w;
        float* d2 = dst + (2 * h + r) * w;
        for (long c = 0; c < w; ++c) {
            const float* t = table[row[c < inside ? wx0 + c : symmetric(wx0 + c, iw)]];
            d0[c] = t[0];
            d1[c] = t[1];
            d2[c] = t[2];
        }
    }
}

// Window [wy0, wy1) x [wx0, wx1) of the image, padded symmetrically past the bottom/right edge
// (numpy.pad mode "symmetric"), clip-normalised, in model space, as 3 x h x w float32.
void gather(const py::array& image, const std::vector<double>& low, const std::vector<double>& high,
            const Space& space, long wy0, long wy1, long wx0, long wx1,
            py::array& out, int threads) {
    threads = threads > 0 ? threads : g_threads;
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, 0.0, v.c);
    const long h = wy1 - wy0, w = wx1 - wx0;
    if (!py::isinstance<py::array_t<float>>(out) || !(out.flags() & py::array::c_style) || !out.writeable() ||
        out.ndim() != 3 || out.shape(0) != 3 || out.shape(1) != h || out.shape(2) != w)
        throw py::value_error("out must be a writable C-contiguous 3 x h x w float32 array of the window's size");
    if (wy0 < 0 || wx0 < 0 || wy0 >= v.h || wx0 >= v.w || h <= 0 || w <= 0)
        throw py::value_error("window must start inside the image and be non-empty");
    float* dst = static_cast<float*>(out.mutable_data());
    const Dtype dt = dtype_of(image);
    py::gil_scoped_release release;
    dispatch(dt, [&](auto tag) {
        using T = typename decltype(tag)::type;
        // Integer code values decode through a table when the window holds more pixels than the
        // table has entries: the same function on the same inputs, so the same values.
        std::vector<double> table;
        long codes = 0;
        if constexpr (std::is_integral_v<T>) {
            codes = static_cast<long>(std::numeric_limits<T>::max()) + 1;
            if (!space.is_srgb && lv.channels == 3 && h * w > codes) {
                table.resize(static_cast<size_t>(codes * lv.channels));
                parallel_rows(3 * codes, threads, [&](long b, long e) {
                    for (long i = b; i < e; ++i) {
                        const long k = i / codes;
                        table[i] = (static_cast<double>(i - k * codes) - lv.low[k]) * lv.scale[k];
                    }
                    for (long i = b; i < e;) {  // runs of one channel's curve
                        const long k = i / codes, end = std::min(e, (k + 1) * codes);
                        space.trc[k].forward(&table[i], end - i);
                        i = end;
                    }
                });
            }
        }
        parallel_rows(h, threads, [&](long b, long e) {
            double planes[3][kBatch];
            const Space::Planes p = {planes[0], planes[1], planes[2]};
            // sRGB RGB with contiguous rows (the common photo): no conversion, so the columns
            // inside the image are a plain loop the compiler vectorises; the rest (padding)
            // goes the general way below.
            const bool plain = space.is_srgb && lv.channels == 3 && v.sc == static_cast<long>(sizeof(T)) &&
                               v.sx == 3 * v.sc && !std::is_same_v<T, Half>;
            const long inside = std::max(0L, std::min(w, v.w - wx0));
            for (long r = b; r < e; ++r) {
                const long y = symmetric(wy0 + r, v.h);
                long c = 0;
                if constexpr (!std::is_same_v<T, Half>) {
                    if (plain) {
                        const T* row = reinterpret_cast<const T*>(v.data + y * v.sy) + 3 * wx0;
                        float* d0 = dst + r * w;
                        float* d1 = dst + (h + r) * w;
                        float* d2 = dst + (2 * h + r) * w;
                        const double l0 = lv.low[0], l1 = lv.low[1], l2 = lv.low[2];
                        const double s0 = lv.scale[0], s1 = lv.scale[1], s2 = lv.scale[2];
                        for (; c < inside; ++c) {
                            d0[c] = static_cast<float>((static_cast<double>(row[3 * c]) - l0) * s0);
                            d1[c] = static_cast<float>((static_cast<double>(row[3 * c + 1]) - l1) * s1);
                            d2[c] = static_cast<float>((static_cast<double>(row[3 * c + 2]) - l2) * s2);
                        }
                    }
                }
                // The rest in batches: decode (table or load and normalise), then convert.
                for (; c < w; c += kBatch) {
                    const long m = std::min(kBatch, w - c);
                    for (long i = 0; i < m; ++i) {
                        const long x = symmetric(wx0 + c + i, v.w);
                        double px[3];
                        if (!table.empty()) {
                            if constexpr (std::is_integral_v<T>) {
                                for (int k = 0; k < 3; ++k) {
                                    T code;
                                    std::memcpy(&code, v.at(y, x, k), sizeof(T));
                                    px[k] = table[k * codes + code];
                                }
                            }
                        } else {
                            load_pixel<T>(v, y, x, px);
                            for (int k = 0; k < lv.channels; ++k) px[k] = (px[k] - lv.low[k]) * lv.scale[k];
                            if (lv.channels == 1) px[1] = px[2] = px[0];
                        }
                        for (int k = 0; k < 3; ++k) planes[k][i] = px[k];
                    }
                    table.empty() ? space.to_model(p, m) : space.linear_to_model(p, m);
                    for (int k = 0; k < 3; ++k) {
                        float* d = dst + (k * h + r) * w + c;
                        for (long i = 0; i < m; ++i) d[i] = static_cast<float>(planes[k][i]);
                    }
                }
            }
        });
    });
}

// The sums behind a prior-input model's image context (libdeclip.priors.context_sums): the count and
// model-space RGB sums of the unclipped pixels within `ring` px (chessboard) of a pixel clipped high,
// then of every unclipped pixel. Rows are summed on their own and added in row order, so the result
// does not depend on the thread count.
std::vector<double> context_sums(const py::array& image, const std::vector<double>& low,
                                 const std::vector<double>& high, const Space& space, const py::array& codes,
                                 int ring, int threads) {
    threads = threads > 0 ? threads : g_threads;
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, 0.0, v.c);
    const uint8_t* c = codes_of(codes, v);
    if (ring < 0 || ring > kMaxFeather) throw py::value_error("ring must be 0 to 254 pixels");
    const long h = v.h, w = v.w;
    const Dtype dt = dtype_of(image);
    std::vector<double> rows(static_cast<size_t>(8 * h), 0.0);
    {
        py::gil_scoped_release release;
        std::vector<uint8_t> lit(static_cast<size_t>(h * w));
        parallel_rows(h, threads, [&](long b, long e) {
            for (long i = b * w; i < e * w; ++i) lit[i] = c[i] & 7;
        });
        dispatch(dt, [&](auto tag) {
            using T = typename decltype(tag)::type;
            chessboard_distance(lit.data(), h, w, ring + 1, threads, [&](long y, const uint8_t* d) {
                double planes[3][kBatch];
                const Space::Planes p = {planes[0], planes[1], planes[2]};
                bool near[kBatch];
                double* sums = &rows[static_cast<size_t>(8 * y)];
                const uint8_t* code = c + y * w;
                long m = 0;
                auto flush = [&] {
                    space.to_model(p, m);
                    for (long i = 0; i < m; ++i) {
                        sums[4] += 1.0;
                        for (int k = 0; k < 3; ++k) sums[5 + k] += planes[k][i];
                        if (!near[i]) continue;
                        sums[0] += 1.0;
                        for (int k = 0; k < 3; ++k) sums[1 + k] += planes[k][i];
                    }
                    m = 0;
                };
                for (long x = 0; x < w; ++x) {
                    if (code[x]) continue;
                    for (int k = 0; k < 3; ++k) {
                        const int ch = lv.channels == 1 ? 0 : k;
                        planes[k][m] = (load<T>(v.at(y, x, ch)) - lv.low[ch]) * lv.scale[ch];
                    }
                    near[m] = d[x] <= ring;
                    if (++m == kBatch) flush();
                }
                if (m) flush();
            });
        });
    }
    std::vector<double> total(8, 0.0);
    for (long y = 0; y < h; ++y)
        for (int k = 0; k < 8; ++k) total[k] += rows[static_cast<size_t>(8 * y + k)];
    return total;
}

// The caller's clip codes (None: computed from the values): C-contiguous uint8 H x W of the image.
const uint8_t* given_codes(const py::object& codes, const View& v) {
    if (codes.is_none()) return nullptr;
    if (!py::isinstance<py::array>(codes)) throw py::value_error("codes must be a uint8 array");
    return codes_of(py::reinterpret_borrow<py::array>(codes), v);
}

// Pass 1 for one tile: the new clip-normalised value of every changing value of the core, in
// row-major pixel order, channel-minor; and their minimum and maximum.
std::tuple<py::array_t<float>, double, double> recover(
    const py::array& image, const std::vector<double>& low, const std::vector<double>& high, double tolerance,
    int feather, const Space& space, long y0, long y1, long x0, long x1, long wy0, long wx0,
    const py::array_t<float>& residual, int threads, const py::object& codes, bool consistency) {
    threads = threads > 0 ? threads : g_threads;
    const View v = view_of(image, false, "image");
    const uint8_t* given = given_codes(codes, v);
    const Levels lv(low, high, tolerance, v.c);
    check_feather(feather);
    if (residual.ndim() != 3 || residual.shape(0) != 3) throw py::value_error("residual must be 3 x h x w");
    if (y0 < 0 || x0 < 0 || y1 > v.h || x1 > v.w || y0 >= y1 || x0 >= x1 || y0 < wy0 || x0 < wx0 ||
        y1 - wy0 > residual.shape(1) || x1 - wx0 > residual.shape(2))
        throw py::value_error("core outside the image or the residual's window");
    const char* res = reinterpret_cast<const char*>(residual.data());
    const long rs0 = static_cast<long>(residual.strides(0)), rs1 = static_cast<long>(residual.strides(1)),
               rs2 = static_cast<long>(residual.strides(2));
    const Dtype dt = dtype_of(image);
    const long h = y1 - y0, w = x1 - x0;
    std::vector<std::vector<float>> parts;
    {
        py::gil_scoped_release release;
        dispatch(dt, [&](auto tag) {
            using T = typename decltype(tag)::type;
            const CoreMask mask = CoreMask::build<T>(v, lv, y0, y1, x0, x1, feather, threads, given);
            // Each thread keeps its rows' values; joined in row order below.
            const long chunks = std::max(1L, std::min<long>(threads, h / 8));
            parts.resize(static_cast<size_t>(chunks));
            const long step = (h + chunks - 1) / chunks;
            parallel_chunks(chunks, [&](long chunk) {
                {
                    auto& part = parts[static_cast<size_t>(chunk)];
                    // The changed pixels of a row, in batches: their clip-normalised values x, and
                    // the model's answer for them (into model space, plus the residual, and back).
                    double x[3][kBatch], model[3][kBatch];
                    long column[kBatch];
                    const Space::Planes p = {model[0], model[1], model[2]};
                    for (long r = chunk * step; r < std::min(h, (chunk + 1) * step); ++r)
                        for (long c0 = 0; c0 < w; c0 += kBatch) {
                            long m = 0;
                            for (long c = c0; c < std::min(w, c0 + kBatch); ++c) {
                                if (!mask.changed(r * w + c, lv.channels)) continue;
                                double src[3];
                                load_pixel<T>(v, y0 + r, x0 + c, src);
                                for (int k = 0; k < lv.channels; ++k) x[k][m] = (src[k] - lv.low[k]) * lv.scale[k];
                                for (int k = 0; k < 3; ++k) model[k][m] = x[lv.channels == 1 ? 0 : k][m];
                                column[m++] = c;
                            }
                            if (m == 0) continue;
                            space.to_model(p, m);
                            for (long j = 0; j < m; ++j) {
                                const long ry = y0 - wy0 + r, rx = x0 - wx0 + column[j];
                                for (int k = 0; k < 3; ++k)
                                    model[k][j] += static_cast<double>(
                                        *reinterpret_cast<const float*>(res + k * rs0 + ry * rs1 + rx * rs2));
                            }
                            space.from_model(p, m);
                            for (long j = 0; j < m; ++j) {
                                const long i = r * w + column[j];
                                const uint8_t changed = mask.changed(i, lv.channels);
                                double out[3] = {model[0][j], model[1][j], model[2][j]};
                                if (lv.channels == 1) out[0] = (out[0] + out[1] + out[2]) / 3.0;
                                const double weight = mask.weights.empty() ? 0.0 : double{mask.weights[i]};
                                const uint8_t code = mask.codes[i];
                                for (int k = 0; k < lv.channels; ++k) {
                                    if (!(changed >> k & 1)) continue;
                                    double nv = x[k][j];
                                    if (weight != 0.0) nv += weight * (out[k] - x[k][j]);
                                    // The camera recorded "at least this bright" (or "at most this dark"):
                                    // with `consistency`, a clipped value only ever moves outwards.
                                    if (code >> k & 1) nv = consistency ? std::max(out[k], x[k][j]) : out[k];
                                    if (code >> (3 + k) & 1) nv = consistency ? std::min(out[k], x[k][j]) : out[k];
                                    part.push_back(static_cast<float>(nv));
                                }
                            }
                        }
                }
            });
        });
    }
    size_t n = 0;
    for (const auto& p : parts) n += p.size();
    py::array_t<float> values(static_cast<py::ssize_t>(n));
    float* dst = values.mutable_data();
    double vmin = std::numeric_limits<double>::infinity(), vmax = -vmin;
    for (const auto& p : parts) {
        for (float f : p) {
            vmin = std::min(vmin, static_cast<double>(f));
            vmax = std::max(vmax, static_cast<double>(f));
        }
        dst = std::copy(p.begin(), p.end(), dst);
    }
    return {values, vmin, vmax};
}

// What the fit writes for each unclipped integer code (per channel; -1: the code stays), kept
// across the tiles of one composite so it is built once per image rather than once per tile. The
// key says which image levels and fit it was built for; a call with others rebuilds it. One
// composite at a time may use it.
struct ReshapeTable {
    std::vector<int32_t> written;
    std::vector<double> key;
};

// Pass 2 for one tile: write the core into `out` (the input's dtype): recovered values through the
// fit policy, and, when the policy reshapes the range, unclipped values beyond its knee and toe.
void write_core(py::array& out, const py::array& image, const std::vector<double>& low,
                const std::vector<double>& high, double tolerance, int feather, long y0, long y1, long x0,
                long x1, const py::object& values_obj, int policy, double vmin, double vmax, double knee,
                double toe, bool reshapes, int threads, const py::object& codes, const py::object& table_obj) {
    threads = threads > 0 ? threads : g_threads;
    const View o = view_of(out, true, "out");
    const View v = view_of(image, false, "image");
    const uint8_t* given = given_codes(codes, v);
    if (o.h != v.h || o.w != v.w || o.c != v.c || dtype_of(out) != dtype_of(image))
        throw py::value_error("out must have the image's shape and dtype");
    if (y0 < 0 || x0 < 0 || y1 > v.h || x1 > v.w || y0 >= y1 || x0 >= x1)
        throw py::value_error("core outside the image");
    const Levels lv(low, high, tolerance, v.c);
    check_feather(feather);
    const Fit fit = make_fit(policy, vmin, vmax, knee, toe);
    py::array_t<float, py::array::c_style | py::array::forcecast> values;
    const bool has_values = !values_obj.is_none();
    if (has_values) values = values_obj.cast<py::array_t<float, py::array::c_style | py::array::forcecast>>();
    if (!has_values && !reshapes) return;
    const float* vals = has_values ? values.data() : nullptr;
    const long n_values = has_values ? static_cast<long>(values.size()) : 0;
    double knee_level[3], toe_level[3];
    for (int k = 0; k < lv.channels; ++k) {
        knee_level[k] = lv.low[k] + knee * lv.range[k];
        toe_level[k] = lv.low[k] + toe * lv.range[k];
    }
    const Dtype dt = dtype_of(image);
    const long h = y1 - y0, w = x1 - x0;
    ReshapeTable* shared = table_obj.is_none() ? nullptr : &table_obj.cast<ReshapeTable&>();
    std::vector<double> key = {static_cast<double>(dt), static_cast<double>(lv.channels), static_cast<double>(policy),
                               vmin, vmax, knee, toe};
    for (int k = 0; k < lv.channels; ++k) key.insert(key.end(), {lv.low[k], lv.range[k]});
    bool mismatch = false;
    {
        py::gil_scoped_release release;
        dispatch(dt, [&](auto tag) {
            using T = typename decltype(tag)::type;
            std::vector<long> offset;  // index of each row's first recovered value
            CoreMask mask;
            if (has_values) {
                mask = CoreMask::build<T>(v, lv, y0, y1, x0, x1, feather, threads, given);
                offset.assign(static_cast<size_t>(h + 1), 0);
                parallel_rows(h, threads, [&](long b, long e) {  // each row's count, then their sums
                    for (long r = b; r < e; ++r) {
                        long count = 0;
                        for (long c = 0; c < w; ++c) {
                            const uint8_t ch = mask.changed(r * w + c, lv.channels);
                            for (int k = 0; k < lv.channels; ++k) count += ch >> k & 1;
                        }
                        offset[static_cast<size_t>(r + 1)] = count;
                    }
                });
                for (long r = 0; r < h; ++r) offset[static_cast<size_t>(r + 1)] += offset[static_cast<size_t>(r)];
                if (offset[h] != n_values) {
                    mismatch = true;
                    return;
                }
            }
            // What the fit makes of an unclipped value of channel k; false when it stays as it is.
            const auto refit = [&](double value, int k, double& fitted) {
                if (!reshapes || !(value > knee_level[k] || value < toe_level[k])) return false;
                const double x = (value - lv.low[k]) / lv.range[k];
                fitted = fit(x);
                return fitted != x;
            };
            // With integers that depends on the code value alone: a table of what to write (the
            // same computation per code; -1: nothing), the caller's when given (built on first use),
            // else this core's own when it has more values than the table has entries.
            std::vector<int32_t> own;
            const int32_t* reshaped = nullptr;
            long codes = 0;
            if constexpr (std::is_integral_v<T>) {
                codes = static_cast<long>(std::numeric_limits<T>::max()) + 1;
                const auto build = [&](std::vector<int32_t>& table) {
                    table.assign(static_cast<size_t>(codes * lv.channels), -1);
                    parallel_rows(codes, threads, [&](long b, long e) {
                        for (int k = 0; k < lv.channels; ++k)
                            for (long code = b; code < e; ++code) {
                                double fitted;
                                if (!refit(static_cast<double>(code), k, fitted)) continue;
                                T written;
                                store<T>(reinterpret_cast<char*>(&written), fitted * lv.range[k] + lv.low[k]);
                                table[static_cast<size_t>(k * codes + code)] = static_cast<int32_t>(written);
                            }
                    });
                };
                if (reshapes && shared != nullptr) {
                    if (shared->key != key || shared->written.empty()) {
                        build(shared->written);
                        shared->key = key;
                    }
                    reshaped = shared->written.data();
                } else if (reshapes && h * w * lv.channels > codes) {
                    build(own);
                    reshaped = own.data();
                }
            }
            parallel_rows(h, threads, [&](long b, long e) {
                for (long r = b; r < e; ++r) {
                    // Integers with a table: every value of the row through it first (a changed
                    // value is written again below), in a plain loop per channel.
                    if constexpr (std::is_integral_v<T>) {
                        if (reshaped != nullptr) {
                            for (int k = 0; k < lv.channels; ++k) {
                                const int32_t* table = reshaped + k * codes;
                                const char* src = v.at(y0 + r, x0, k);
                                char* dst = o.at(y0 + r, x0, k);
                                for (long c = 0; c < w; ++c) {
                                    T code;
                                    std::memcpy(&code, src + c * v.sx, sizeof(T));
                                    const int32_t written = table[code];
                                    if (written < 0) continue;
                                    const T t = static_cast<T>(written);
                                    std::memcpy(dst + c * o.sx, &t, sizeof(T));
                                }
                            }
                            if (!has_values) continue;
                        }
                    }
                    long next = has_values ? offset[r] : 0;
                    for (long c = 0; c < w; ++c) {
                        const uint8_t changed = has_values ? mask.changed(r * w + c, lv.channels) : 0;
                        if (changed == 0 && reshaped != nullptr) continue;
                        for (int k = 0; k < lv.channels; ++k) {
                            char* dst = o.at(y0 + r, x0 + c, k);
                            double fitted;
                            if (changed >> k & 1) {
                                fitted = fit(static_cast<double>(vals[next++]));
                            } else if (reshaped != nullptr || !refit(load<T>(v.at(y0 + r, x0 + c, k)), k, fitted)) {
                                continue;
                            }
                            store<T>(dst, fitted * lv.range[k] + lv.low[k]);
                        }
                    }
                }
            });
        });
    }
    if (mismatch) throw py::value_error("values do not match the tile's changing values (image changed?)");
}

}  // namespace

int declip::default_threads() { return g_threads; }

PYBIND11_MODULE(_native, m) {
    m.doc() = "libdeclip's native core: the pixel loops around the model (see bindings/native.cpp)";

    py::class_<ReshapeTable>(m, "ReshapeTable",
                             "What the fit writes for each unclipped integer code: one per composite, "
                             "passed to every write_core call of it.")
        .def(py::init<>());

    py::class_<Space>(m, "Space", "An RGB space for conversions into and out of model space.")
        .def(py::init([](const std::vector<std::tuple<int, std::vector<double>, std::vector<double>,
                                                      std::vector<double>>>& trc,
                         const std::vector<double>& to_srgb, const std::vector<double>& from_srgb,
                         const std::tuple<int, std::vector<double>, std::vector<double>, std::vector<double>>& srgb,
                         bool is_srgb) {
                 if (trc.size() != 3) throw py::value_error("need three tone curves");
                 Space s;
                 for (size_t i = 0; i < 3; ++i)
                     s.trc[i] = make_curve(std::get<0>(trc[i]), std::get<1>(trc[i]), std::get<2>(trc[i]),
                                           std::get<3>(trc[i]));
                 s.to_srgb = matrix9(to_srgb);
                 s.from_srgb = matrix9(from_srgb);
                 s.srgb = make_curve(std::get<0>(srgb), std::get<1>(srgb), std::get<2>(srgb), std::get<3>(srgb));
                 s.is_srgb = is_srgb;
                 return s;
             }),
             py::arg("trc"), py::arg("to_srgb"), py::arg("from_srgb"), py::arg("srgb_curve"), py::arg("is_srgb"));

    m.def("set_threads", [](int n) { g_threads = std::max(1, n); }, py::arg("threads"),
          "Threads the native loops use (default: all cores).");
    m.def("get_threads", [] { return g_threads; });
    m.def("pow_implementation", [] { return std::string(pow_impl_name()); },
          "Which pow the colour conversions use: libmvec's vector pow (AVX-512 or AVX2) or scalar std::pow.");
    m.def("clip_masks", &clip_masks, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("tolerance"),
          "Boolean H x W x C masks of values clipped high and low.");
    m.def("clip_codes", &clip_codes, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("tolerance"),
          py::arg("threads") = 0);
    m.def("clipped_values", &clipped_values, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("codes"),
          py::arg("pixels"), py::arg("rec"), py::arg("consistency"),
          "The classical methods' new clip-normalised values at the clipped pixels, and which the codes mark.");
    m.def("any_clipped", &any_clipped, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("tolerance"));
    m.def("feather_weights", &feather_weights, py::arg("clipped"), py::arg("radius"));
    m.def("convert", &convert, py::arg("rgb"), py::arg("space"), py::arg("into_model"));
    m.def("apply_fit", &apply_fit, py::arg("values"), py::arg("policy"), py::arg("vmin"), py::arg("vmax"),
          py::arg("knee"), py::arg("toe"));
    m.def("gather", &gather, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("space"),
          py::arg("wy0"), py::arg("wy1"), py::arg("wx0"), py::arg("wx1"), py::arg("out"), py::arg("threads") = 0);
    m.def("mask_planes", &mask_planes, py::arg("codes"), py::arg("channels"), py::arg("wy0"), py::arg("wy1"),
          py::arg("wx0"), py::arg("wx1"), py::arg("out"),
          "A mask-input model's 3 x h x w clip planes (+1 high, -1 low) of a window, from clip codes.");
    m.def("context_sums", &context_sums, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("space"),
          py::arg("codes"), py::arg("ring"), py::arg("threads") = 0,
          "Ring and unclipped (count, model-space R, G, B sums) of an image: a prior-input model's context.");
    m.def("recover", &recover, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("tolerance"),
          py::arg("feather"), py::arg("space"), py::arg("y0"), py::arg("y1"), py::arg("x0"), py::arg("x1"),
          py::arg("wy0"), py::arg("wx0"), py::arg("residual"), py::arg("threads") = 0,
          py::arg("codes") = py::none(), py::arg("consistency") = true);
    m.def("write_core", &write_core, py::arg("out"), py::arg("image"), py::arg("low"), py::arg("high"),
          py::arg("tolerance"), py::arg("feather"), py::arg("y0"), py::arg("y1"), py::arg("x0"), py::arg("x1"),
          py::arg("values"), py::arg("policy"), py::arg("vmin"), py::arg("vmax"), py::arg("knee"), py::arg("toe"),
          py::arg("reshapes"), py::arg("threads") = 0, py::arg("codes") = py::none(),
          py::arg("table") = py::none());
    register_opposed(m);
    register_cross_channel(m);
    register_specks(m);
}
