// libdeclip._native.opposed_photosites: highlight reconstruction on a camera RAW mosaic (one value per
// photosite, before demosaicing), in the manner of darktable's "inpaint opposed" highlights mode.
//
// In white-balanced units (each photosite times its colour's gain), a clipped photosite of colour c is
// estimated from the two OTHER colours in its 3 x 3 neighbourhood, which are usually not clipped where c
// is: for each of them the mean of the cube roots of its photosites there, the two means averaged and
// cubed back (the cube root makes the average of colours behave like a perceptual one, so one very
// bright neighbour does not dominate). That "opposed" reference is a neutral (grey) guess; one chroma
// offset per colour, measured once per image on unclipped photosites around the clipped areas, moves it
// back to the scene's colour there. The clipped reading is a lower bound on the truth, so the result is
// max(reading, reference + chroma[c]); unclipped photosites are returned unchanged.
//
// Mirrors reference.opposed_photosites (tests/reference.py) operation by operation, in double.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace py = pybind11;

namespace {

// Chessboard distance (in photosites) from a clipped photosite of colour c within which unclipped
// photosites of colour c measure c's chroma offset. darktable marks 3 x 3 photosite blocks holding a
// clipped photosite and dilates that block mask by about 3 blocks, i.e. some 9 photosites at block
// granularity; at photosite resolution 6 keeps the ring as close to the highlight (where its colour is
// what the highlight's colour most likely is) while still holding 3 rows of same-colour red and blue
// photosites on a Bayer sensor.
constexpr int kRing = 6;
// Like darktable, ring photosites must read above this fraction of their colour's clip level: dark
// photosites are mostly noise, and their (value - reference) says nothing about bright colour.
constexpr double kRingFloor = 0.2;

// The module's get_threads (set_threads controls every native loop); looked up under the GIL per call.
// Deliberately leaked: it must outlive the module's teardown at interpreter exit.
py::object* g_get_threads = nullptr;

// Run fn(b, e) on row ranges [b, e) covering [0, n), on up to `threads` threads (the caller's is one).
// Results never depend on the split: every row is computed alone and sums are combined in row order.
template <class Fn>
void split_rows(long n, int threads, Fn&& fn) {
    const long min_rows = 8;
    const long chunks = std::min<long>(threads, std::max<long>(1, n / min_rows));
    if (chunks <= 1) {
        fn(0L, n);
        return;
    }
    const long step = (n + chunks - 1) / chunks;
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(chunks - 1));
    for (long i = 1; i < chunks; ++i) {
        const long b = i * step, e = std::min(n, b + step);
        if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
    }
    fn(0L, std::min(n, step));
    for (auto& t : pool) t.join();
}

struct Mosaic {
    const float* v;
    const uint8_t* c;
    long h, w;
    double clip[3];  // camera units, as given: a photosite is clipped when value >= clip[colour]
    double gain[3];

    double balanced(long i) const { return static_cast<double>(v[i]) * gain[c[i]]; }

    // The opposed reference of photosite (y, x) in white-balanced units. The 3 x 3 window is cut to the
    // image (like darktable's refavg at the borders); on a Bayer mosaic of at least 2 x 2 even a corner's
    // 2 x 2 window holds every colour. Should a window lack one of the other colours (1-pixel-high
    // images, exotic layouts), the one present serves alone; lacking both, there is no reference.
    // As our issue specifies, each colour's mean is taken of cube roots (darktable takes the cube root
    // of the plain mean); on smooth data the two differ by far less than the method's own error.
    bool opposed(long y, long x, double& ref) const {
        double sum[3] = {0.0, 0.0, 0.0};
        int n[3] = {0, 0, 0};
        const long y0 = std::max(0L, y - 1), y1 = std::min(h - 1, y + 1);
        const long x0 = std::max(0L, x - 1), x1 = std::min(w - 1, x + 1);
        for (long yy = y0; yy <= y1; ++yy)
            for (long xx = x0; xx <= x1; ++xx) {
                const long i = yy * w + xx;
                const double b = balanced(i);
                sum[c[i]] += std::cbrt(b > 0.0 ? b : 0.0);  // black-subtracted noise can be negative
                ++n[c[i]];
            }
        const int own = c[y * w + x];
        double t = 0.0;
        int used = 0;
        for (int k = 0; k < 3; ++k)
            if (k != own && n[k] > 0) {
                t += sum[k] / n[k];
                ++used;
            }
        if (used == 0) return false;
        t /= used;
        ref = t * t * t;
        return true;
    }
};

enum class Status { Ok, BadColour, NotFinite };

// mask: one byte per photosite, bit c set when the photosite is of colour c and clipped.
// near: mask OR-ed over +-kRing columns (the vertical half of the dilation is done where it is read).
Status repair(const Mosaic& m, float* out, int threads) {
    const long h = m.h, w = m.w, n = h * w;
    std::vector<uint8_t> mask(static_cast<size_t>(n)), near(static_cast<size_t>(n));
    std::atomic<int> bad_colour{0}, not_finite{0};

    split_rows(h, threads, [&](long b, long e) {
        for (long y = b; y < e; ++y) {
            const long row = y * w;
            for (long x = 0; x < w; ++x) {
                const long i = row + x;
                const uint8_t c = m.c[i];
                if (c > 2) {
                    bad_colour.store(1, std::memory_order_relaxed);
                    mask[i] = 0;
                    continue;
                }
                if (!std::isfinite(m.v[i])) not_finite.store(1, std::memory_order_relaxed);
                mask[i] = static_cast<double>(m.v[i]) >= m.clip[c] ? static_cast<uint8_t>(1u << c) : 0;
            }
            for (long x = 0; x < w; ++x) {
                uint8_t any = 0;
                const long x0 = std::max(0L, x - kRing), x1 = std::min(w - 1, x + kRing);
                for (long xx = x0; xx <= x1; ++xx) any |= mask[row + xx];
                near[row + x] = any;
            }
        }
    });
    if (bad_colour.load()) return Status::BadColour;
    if (not_finite.load()) return Status::NotFinite;

    // Chroma offsets: per-row sums first (each row added left to right), then the rows in order, so
    // the offsets do not depend on the thread count.
    std::vector<double> row_sum(static_cast<size_t>(3 * h), 0.0);
    std::vector<long> row_count(static_cast<size_t>(3 * h), 0);
    split_rows(h, threads, [&](long b, long e) {
        for (long y = b; y < e; ++y) {
            const long y0 = std::max(0L, y - kRing), y1 = std::min(h - 1, y + kRing);
            for (long x = 0; x < w; ++x) {
                const long i = y * w + x;
                const int c = m.c[i];
                const double v = m.v[i];
                if (v >= m.clip[c] || !(v > kRingFloor * m.clip[c])) continue;
                uint8_t close = 0;
                for (long yy = y0; yy <= y1; ++yy) close |= near[yy * w + x];
                if (!(close & (1u << c))) continue;
                // The reference must come from trustworthy readings: no clipped photosite (of any
                // colour) in the 3 x 3 window, else (value - reference) is biased by the clipping.
                uint8_t dirty = 0;
                for (long yy = std::max(0L, y - 1); yy <= std::min(h - 1, y + 1); ++yy)
                    for (long xx = std::max(0L, x - 1); xx <= std::min(w - 1, x + 1); ++xx) dirty |= mask[yy * w + xx];
                if (dirty) continue;
                double ref;
                if (!m.opposed(y, x, ref)) continue;
                row_sum[3 * y + c] += m.balanced(i) - ref;
                ++row_count[3 * y + c];
            }
        }
    });
    double chroma[3];
    for (int c = 0; c < 3; ++c) {
        double sum = 0.0;
        long count = 0;
        for (long y = 0; y < h; ++y) {
            sum += row_sum[3 * y + c];
            count += row_count[3 * y + c];
        }
        chroma[c] = count > 0 ? sum / count : 0.0;  // no ring: the neutral reference as it is
    }

    split_rows(h, threads, [&](long b, long e) {
        for (long y = b; y < e; ++y)
            for (long x = 0; x < w; ++x) {
                const long i = y * w + x;
                out[i] = m.v[i];
                if (!mask[i]) continue;
                const int c = m.c[i];
                double ref;
                if (!m.opposed(y, x, ref)) continue;
                const double estimate = ref + chroma[c];
                // Compared in balanced units, written back in camera units; float rounding is monotonic,
                // so a replaced value never drops below the reading.
                if (estimate > m.balanced(i)) out[i] = static_cast<float>(estimate / m.gain[c]);
            }
    });
    return Status::Ok;
}

py::array_t<float> opposed_photosites(const py::array& mosaic, const py::array& colours,
                                      const std::vector<double>& clip, const std::vector<double>& gains) {
    if (!py::isinstance<py::array_t<float>>(mosaic))
        throw py::type_error("mosaic must be a float32 array, not " + std::string(py::str(mosaic.dtype())));
    if (!py::isinstance<py::array_t<uint8_t>>(colours))
        throw py::type_error("colours must be a uint8 array, not " + std::string(py::str(colours.dtype())));
    if (mosaic.ndim() != 2) throw py::value_error("mosaic must be H x W (one value per photosite)");
    if (colours.ndim() != 2 || colours.shape(0) != mosaic.shape(0) || colours.shape(1) != mosaic.shape(1))
        throw py::value_error("colours must be H x W, the mosaic's shape");
    if (!(mosaic.flags() & py::array::c_style)) throw py::value_error("mosaic must be C-contiguous");
    if (!(colours.flags() & py::array::c_style)) throw py::value_error("colours must be C-contiguous");
    if (clip.size() != 3) throw py::value_error("clip needs one level per colour (R, G, B)");
    if (gains.size() != 3) throw py::value_error("gains needs one white-balance gain per colour (R, G, B)");
    Mosaic m{static_cast<const float*>(mosaic.data()), static_cast<const uint8_t*>(colours.data()),
             static_cast<long>(mosaic.shape(0)), static_cast<long>(mosaic.shape(1)), {}, {}};
    for (int c = 0; c < 3; ++c) {
        if (!(std::isfinite(clip[c]) && clip[c] > 0.0)) throw py::value_error("clip levels must be finite and > 0");
        if (!(std::isfinite(gains[c]) && gains[c] > 0.0)) throw py::value_error("gains must be finite and > 0");
        m.clip[c] = clip[c];
        m.gain[c] = gains[c];
    }
    const int threads = std::max(1, (*g_get_threads)().cast<int>());

    py::array_t<float> out({mosaic.shape(0), mosaic.shape(1)});
    Status status;
    {
        py::gil_scoped_release release;
        status = repair(m, out.mutable_data(), threads);
    }
    if (status == Status::BadColour) throw py::value_error("colours must be 0 (R), 1 (G) or 2 (B)");
    if (status == Status::NotFinite) throw py::value_error("mosaic has NaN or infinite values");
    return out;
}

}  // namespace

void register_opposed(py::module_& m) {
    g_get_threads = new py::object(m.attr("get_threads"));
    m.def("opposed_photosites", &opposed_photosites, py::arg("mosaic"), py::arg("colours"), py::arg("clip"),
          py::arg("gains"),
          "Repair the clipped photosites of an H x W float32 RAW mosaic (colours: H x W uint8, 0/1/2 = R/G/B) "
          "like darktable's inpaint opposed; returns a new H x W float32 array.");
}
