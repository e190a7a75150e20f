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
//
// libdeclip._native.opposed_rgb: the same idea on an RGB picture (libdeclip.estimates'
// "inpaint-opposed", in model space): each highlight (pixels with a channel clipped high), grown by a
// border of a few pixels, is one region; its unclipped border pixels give the region's chroma offset
// (linear light minus the opposed reference), and every value clipped high is estimated as the opposed
// reference plus that offset. Mirrors estimates._inpaint_opposed (numpy, whole image) within float
// rounding, in time and memory that follow the clipped area.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "arrays.hpp"
#include "colour.hpp"
#include "pixels.hpp"
#include "vecmath.hpp"

namespace py = pybind11;
using namespace declip;

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

    parallel_rows(h, threads, [&](long b, long e) {
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
    parallel_rows(h, threads, [&](long b, long e) {
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

    parallel_rows(h, threads, [&](long b, long e) {
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
    const int threads = default_threads();

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


// ------------------------------------------------------------------------- inpaint opposed on RGB

// Columns [a, b] (inclusive) of one row of a region.
struct Run {
    long a, b;
    long region;  // 0-based region index
};

// Union-find over the runs of all rows (path halving).
long find_root(std::vector<long>& parent, long i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

class RgbOpposed {
   public:
    RgbOpposed(const View& v, const Levels& lv, const Space& space, const uint8_t* codes, int border,
               int min_border, int threads)
        : v_(v), lv_(lv), space_(space), codes_(codes), border_(border), min_border_(min_border),
          threads_(threads), h_(v.h), w_(v.w) {}

    // Estimates of every pixel with a nonzero code, row-major, into out (index.size() x 3 model-space
    // values).
    template <class T>
    void run(const ClippedIndex& index, double* out) {
        build_table<T>();
        label_regions();
        region_chroma<T>();
        estimate<T>(index, out);
    }

   private:
    static constexpr long kBand = 64;  // rows per unit of work: fixed, so sums do not depend on threads

    const View v_;
    const Levels lv_;
    const Space& space_;
    const uint8_t* codes_;
    const int border_, min_border_, threads_;
    const long h_, w_;
    std::vector<double> table_;  // integer codes -> per-channel curve value (linear light before the mix)
    long codes_per_channel_ = 0;
    std::vector<std::vector<Run>> runs_;  // per row, sorted
    long regions_ = 0;
    std::vector<std::array<double, 3>> chroma_;

    bool high(long y, long x) const { return (codes_[y * w_ + x] & 7) != 0; }

    // The per-channel curve of linear light: sRGB's for an sRGB picture (the model's own encoding),
    // else the space's tone curves (the matrix to linear sRGB follows in linear()).
    const Curve& curve(int k) const { return space_.is_srgb ? space_.srgb : space_.trc[k]; }

    template <class T>
    void build_table() {
        if constexpr (std::is_integral_v<T>) {
            codes_per_channel_ = static_cast<long>(std::numeric_limits<T>::max()) + 1;
            table_.resize(static_cast<size_t>(3 * codes_per_channel_));
            parallel_rows(3, threads_, [&](long b, long e) {
                for (long k = b; k < e; ++k) {
                    const int ch = lv_.channels == 1 ? 0 : static_cast<int>(k);
                    double* t = &table_[static_cast<size_t>(k * codes_per_channel_)];
                    for (long i = 0; i < codes_per_channel_; ++i)
                        t[i] = (static_cast<double>(i) - lv_.low[ch]) * lv_.scale[ch];
                    curve(static_cast<int>(k)).forward(t, codes_per_channel_);
                }
            });
        }
    }

    // Linear-light sRGB of n pixels (y, xs[i]) into lin (3 values each).
    template <class T>
    void linear(long y, const long* xs, long n, double* lin) const {
        double planes[3][kBatch];
        const Space::Planes p = {planes[0], planes[1], planes[2]};
        for (long s = 0; s < n; s += kBatch) {
            const long m = std::min(kBatch, n - s);
            for (long i = 0; i < m; ++i) {
                const long x = xs[s + i];
                for (int k = 0; k < 3; ++k) {
                    const int ch = lv_.channels == 1 ? 0 : k;
                    if constexpr (std::is_integral_v<T>) {
                        T code;
                        std::memcpy(&code, v_.at(y, x, ch), sizeof(T));
                        planes[k][i] = table_[static_cast<size_t>(k * codes_per_channel_ + code)];
                    } else {
                        planes[k][i] = (load<T>(v_.at(y, x, ch)) - lv_.low[ch]) * lv_.scale[ch];
                    }
                }
            }
            if constexpr (!std::is_integral_v<T>)
                for (int k = 0; k < 3; ++k) curve(k).forward(planes[k], m);
            if (!space_.is_srgb) Space::mix(space_.to_srgb, p, m);
            for (long i = 0; i < m; ++i)
                for (int k = 0; k < 3; ++k) lin[3 * (s + i) + k] = planes[k][i];
        }
    }

    // Regions: the highlights grown by `border` pixels (4-connected steps, as scipy's binary_dilation
    // with its default structure), labelled 8-connected, kept as runs of columns per row. A highlight
    // run [a, b] of row y grows to [a - r, b + r] in row y + dy, r = border - |dy|.
    void label_regions() {
        std::vector<std::vector<std::pair<long, long>>> lit(static_cast<size_t>(h_));
        parallel_rows(h_, threads_, [&](long b, long e) {
            for (long y = b; y < e; ++y) {
                const uint8_t* row = codes_ + y * w_;
                for (long x = next_set(row, 0, w_, 7); x < w_; x = next_set(row, x, w_, 7)) {
                    const long a = x;
                    while (x < w_ && (row[x] & 7)) ++x;
                    lit[static_cast<size_t>(y)].emplace_back(a, x - 1);
                }
            }
        });
        runs_.assign(static_cast<size_t>(h_), {});
        parallel_rows(h_, threads_, [&](long b, long e) {
            std::vector<std::pair<long, long>> spans;
            for (long y = b; y < e; ++y) {
                spans.clear();
                for (long dy = -border_; dy <= border_; ++dy) {
                    const long yy = y + dy;
                    if (yy < 0 || yy >= h_) continue;
                    const long r = border_ - std::labs(dy);
                    for (const auto& [a, z] : lit[static_cast<size_t>(yy)])
                        spans.emplace_back(std::max(0L, a - r), std::min(w_ - 1, z + r));
                }
                std::sort(spans.begin(), spans.end());
                auto& row = runs_[static_cast<size_t>(y)];
                for (const auto& [a, z] : spans) {
                    if (!row.empty() && a <= row.back().b + 1)
                        row.back().b = std::max(row.back().b, z);
                    else
                        row.push_back({a, z, 0});
                }
            }
        });
        // Union the runs that touch (8-connected) the runs of the row above, then number the roots.
        std::vector<long> first(static_cast<size_t>(h_ + 1), 0);
        for (long y = 0; y < h_; ++y) first[y + 1] = first[y] + static_cast<long>(runs_[y].size());
        std::vector<long> parent(static_cast<size_t>(first[h_]));
        for (size_t i = 0; i < parent.size(); ++i) parent[i] = static_cast<long>(i);
        for (long y = 1; y < h_; ++y) {
            const auto &above = runs_[y - 1], &row = runs_[y];
            size_t j = 0;
            for (size_t i = 0; i < row.size(); ++i) {
                while (j < above.size() && above[j].b < row[i].a - 1) ++j;
                for (size_t k = j; k < above.size() && above[k].a <= row[i].b + 1; ++k) {
                    const long r1 = find_root(parent, first[y - 1] + static_cast<long>(k));
                    const long r2 = find_root(parent, first[y] + static_cast<long>(i));
                    if (r1 != r2) parent[std::max(r1, r2)] = std::min(r1, r2);
                }
            }
        }
        std::vector<long> number(parent.size(), -1);
        regions_ = 0;
        for (long y = 0; y < h_; ++y)
            for (size_t i = 0; i < runs_[y].size(); ++i) {
                const long root = find_root(parent, first[y] + static_cast<long>(i));
                if (number[root] < 0) number[root] = regions_++;
                runs_[y][i].region = number[root];
            }
    }

    // Linear light of the rows [y0 - 1, y1] (inside the image) at the columns within one pixel of a
    // region, into buf (row r - y0 + 1, 3 values per column).
    template <class T>
    void linear_band(long y0, long y1, std::vector<double>& buf) const {
        const long r0 = std::max(0L, y0 - 1), r1 = std::min(h_, y1 + 1);
        buf.resize(static_cast<size_t>((y1 - y0 + 2) * w_ * 3));
        std::vector<std::pair<long, long>> spans;
        std::vector<long> xs;
        for (long r = r0; r < r1; ++r) {
            spans.clear();
            for (long yy = std::max(0L, r - 1); yy <= std::min(h_ - 1, r + 1); ++yy)
                for (const Run& run : runs_[yy]) spans.emplace_back(std::max(0L, run.a - 1), std::min(w_ - 1, run.b + 1));
            std::sort(spans.begin(), spans.end());
            xs.clear();
            long next = 0;  // first column not yet listed
            for (const auto& [a, z] : spans) {
                for (long x = std::max(a, next); x <= z; ++x) xs.push_back(x);
                next = std::max(next, z + 1);
            }
            std::vector<double> lin(xs.size() * 3);
            linear<T>(r, xs.data(), static_cast<long>(xs.size()), lin.data());
            double* dst = &buf[static_cast<size_t>((r - y0 + 1) * w_ * 3)];
            for (size_t i = 0; i < xs.size(); ++i)
                for (int k = 0; k < 3; ++k) dst[3 * xs[i] + k] = lin[3 * i + k];
        }
    }

    // The 3 x 3 mean of a band's linear light around (y, x), edge pixels repeated at the image's border
    // (scipy's "reflect").
    void box_mean(const std::vector<double>& buf, long y0, long y, long x, double* mean) const {
        mean[0] = mean[1] = mean[2] = 0.0;
        for (long dy = -1; dy <= 1; ++dy) {
            const long yy = std::min(h_ - 1, std::max(0L, y + dy));
            const double* row = &buf[static_cast<size_t>((yy - y0 + 1) * w_ * 3)];
            for (long dx = -1; dx <= 1; ++dx) {
                const long xx = std::min(w_ - 1, std::max(0L, x + dx));
                for (int k = 0; k < 3; ++k) mean[k] += row[3 * xx + k];
            }
        }
        for (int k = 0; k < 3; ++k) mean[k] /= 9.0;
    }

    // The opposed references of n pixels from their 3 x 3 means (planes, converted in place): per
    // colour, the mean of the other two colours' cube roots, cubed. The roots go through the vector
    // pow (a scalar cbrt per value was most of the method's time).
    static void references(double* const mean[3], long n) {
        for (int k = 0; k < 3; ++k) {
            double* m = mean[k];
            double sign[kBatch];
            for (long i = 0; i < n; ++i) {
                sign[i] = m[i] < 0.0 ? -1.0 : 1.0;
                m[i] = std::fabs(m[i]);
            }
            pow_inplace(m, n, 1.0 / 3.0);
            for (long i = 0; i < n; ++i) m[i] *= sign[i];
        }
        for (long i = 0; i < n; ++i) {
            const double sum = mean[0][i] + mean[1][i] + mean[2][i];
            for (int k = 0; k < 3; ++k) {
                const double t = (sum - mean[k][i]) / 2.0;
                mean[k][i] = t * t * t;
            }
        }
    }

    // Each region's chroma offset: the mean of (linear light - reference) over its unclipped border
    // pixels, or the mean over all regions' borders where it has fewer than min_border of them.
    template <class T>
    void region_chroma() {
        const long bands = (h_ + kBand - 1) / kBand;
        using Sums = std::unordered_map<long, std::array<double, 4>>;
        std::vector<Sums> per_band(static_cast<size_t>(bands));
        parallel_rows(bands, threads_, [&](long b, long e) {
            std::vector<double> buf;
            for (long band = b; band < e; ++band) {
                const long y0 = band * kBand, y1 = std::min(h_, y0 + kBand);
                bool any = false;
                for (long y = y0; y < y1 && !any; ++y) any = !runs_[y].empty();
                if (!any) continue;
                linear_band<T>(y0, y1, buf);
                Sums& sums = per_band[static_cast<size_t>(band)];
                double planes[3][kBatch], lin[3][kBatch];
                double* const mean[3] = {planes[0], planes[1], planes[2]};
                for (long y = y0; y < y1; ++y)
                    for (const Run& run : runs_[y]) {
                        std::array<double, 4> s{0.0, 0.0, 0.0, 0.0};
                        long m = 0;
                        auto flush = [&] {
                            references(mean, m);
                            for (long i = 0; i < m; ++i)
                                for (int k = 0; k < 3; ++k) s[k + 1] += lin[k][i] - mean[k][i];
                            s[0] += static_cast<double>(m);
                            m = 0;
                        };
                        for (long x = run.a; x <= run.b; ++x) {
                            if (high(y, x)) continue;
                            double box[3];
                            box_mean(buf, y0, y, x, box);
                            const double* here = &buf[static_cast<size_t>(((y - y0 + 1) * w_ + x) * 3)];
                            for (int k = 0; k < 3; ++k) {
                                mean[k][m] = box[k];
                                lin[k][m] = here[k];
                            }
                            if (++m == kBatch) flush();
                        }
                        if (m) flush();
                        auto& total = sums[run.region];
                        for (int k = 0; k < 4; ++k) total[k] += s[k];
                    }
            }
        });
        std::vector<std::array<double, 4>> total(static_cast<size_t>(regions_), {0.0, 0.0, 0.0, 0.0});
        for (const Sums& sums : per_band)  // in band order, whatever the threads
            for (const auto& [region, s] : sums)
                for (int k = 0; k < 4; ++k) total[static_cast<size_t>(region)][k] += s[k];
        double all[4] = {0.0, 0.0, 0.0, 0.0};
        for (const auto& s : total)
            for (int k = 0; k < 4; ++k) all[k] += s[k];
        chroma_.resize(static_cast<size_t>(regions_));
        for (long r = 0; r < regions_; ++r) {
            const auto& s = total[static_cast<size_t>(r)];
            for (int k = 0; k < 3; ++k)
                chroma_[static_cast<size_t>(r)][k] =
                    s[0] >= min_border_ ? s[k + 1] / s[0] : (all[0] > 0 ? all[k + 1] / all[0] : 0.0);
        }
    }

    // out: for each pixel with a nonzero code (row-major), its model-space values, those clipped high
    // replaced by reference + chroma offset (into model space).
    template <class T>
    void estimate(const ClippedIndex& index, double* out) {
        const long bands = (h_ + kBand - 1) / kBand;
        parallel_rows(bands, threads_, [&](long b, long e) {
            std::vector<double> buf;
            double planes[3][kBatch], est[3][kBatch];
            const Space::Planes p = {planes[0], planes[1], planes[2]};
            const Space::Planes q = {est[0], est[1], est[2]};
            long at[kBatch];
            uint8_t bits[kBatch];
            long m = 0;
            double chroma[3][kBatch];
            auto flush = [&] {
                space_.to_model(p, m);
                references(q, m);
                for (int k = 0; k < 3; ++k) {
                    for (long i = 0; i < m; ++i) est[k][i] += chroma[k][i];
                    space_.srgb.inverse(est[k], m);
                }
                for (long i = 0; i < m; ++i)
                    for (int k = 0; k < 3; ++k) out[3 * at[i] + k] = (bits[i] >> k & 1) ? est[k][i] : planes[k][i];
                m = 0;
            };
            for (long band = b; band < e; ++band) {
                const long y0 = band * kBand, y1 = std::min(h_, y0 + kBand);
                if (!index.any(y0, y1)) continue;
                bool any = false;
                for (long y = y0; y < y1 && !any; ++y) any = !runs_[y].empty();
                if (any) linear_band<T>(y0, y1, buf);
                for (long y = y0; y < y1; ++y) {
                    long next = index.at(y);
                    size_t j = 0;
                    const auto& row = runs_[y];
                    const uint8_t* codes = codes_ + y * w_;
                    for (long x = next_set(codes, 0, w_, 0x3f); x < w_; x = next_set(codes, x + 1, w_, 0x3f)) {
                        const uint8_t code = codes[x];
                        for (int k = 0; k < 3; ++k) {
                            const int ch = lv_.channels == 1 ? 0 : k;
                            planes[k][m] = (load<T>(v_.at(y, x, ch)) - lv_.low[ch]) * lv_.scale[ch];
                        }
                        const uint8_t hi = lv_.channels == 1 ? ((code & 1) ? 7 : 0) : (code & 7);
                        if (hi) {
                            while (row[j].b < x) ++j;  // a highlight pixel always lies in a run
                            double box[3];
                            box_mean(buf, y0, y, x, box);
                            const auto& c = chroma_[static_cast<size_t>(row[j].region)];
                            for (int k = 0; k < 3; ++k) {
                                est[k][m] = box[k];
                                chroma[k][m] = c[k];
                            }
                        } else {
                            for (int k = 0; k < 3; ++k) est[k][m] = chroma[k][m] = 0.0;
                        }
                        bits[m] = hi;
                        at[m] = next++;
                        if (++m == kBatch) flush();
                    }
                }
            }
            if (m) flush();
        });
    }
};

std::tuple<py::array_t<int64_t>, py::array_t<double>> opposed_rgb(
    const py::array& image, const std::vector<double>& low, const std::vector<double>& high, const Space& space,
    const py::array& codes, int border, int min_border, int threads) {
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, 0.0, v.c);
    const uint8_t* c = codes_of(codes, v);
    if (border < 0 || border > 64) throw py::value_error("border must be 0 to 64 pixels");
    threads = threads > 0 ? threads : default_threads();
    RgbOpposed method(v, lv, space, c, border, min_border, threads);
    return estimate_at_clipped(method, image, c, v, threads);
}

}  // namespace

void register_opposed(py::module_& m) {
    m.def("opposed_photosites", &opposed_photosites, py::arg("mosaic"), py::arg("colours"), py::arg("clip"),
          py::arg("gains"),
          "Repair the clipped photosites of an H x W float32 RAW mosaic (colours: H x W uint8, 0/1/2 = R/G/B) "
          "like darktable's inpaint opposed; returns a new H x W float32 array.");
    m.def("opposed_rgb", &opposed_rgb, py::arg("image"), py::arg("low"), py::arg("high"), py::arg("space"),
          py::arg("codes"), py::arg("border"), py::arg("min_border"), py::arg("threads") = 0,
          "Inpaint opposed on an H x W x C picture (libdeclip.estimates): the flat indices (int64) of the pixels "
          "with a nonzero clip code, row-major, and their model-space values (n x 3 float64), those clipped "
          "high estimated.");
}
