// libdeclip._native.cross_channel_rgb: cross-channel regression on an RGB picture (libdeclip.estimates'
// "cross-channel", in model space). A pixel with one or two channels clipped (high or low) gets each lost
// channel as the conditional mean of a local Gaussian colour model: the mean and covariance of the
// unclipped pixels in a box around it, the lost channels regressed on the kept ones (a small ridge keeps
// the slope finite in flat boxes). The box grows through the given sizes until it holds enough unclipped
// pixels; with none large enough the value stays as recorded. Pixels with every channel clipped have
// nothing to regress on and keep their values.
//
// The image is worked in cores of kCore px, each with the largest box's reach around it (mirrored at the
// image's edges, as scipy's "reflect"), through an integral image of the ten weighted moments: memory is
// a few tens of MB per thread whatever the image size, and time follows the clipped area (cores without a
// partly clipped pixel are skipped). Mirrors estimates._cross_channel (numpy, whole image) within float
// rounding.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <tuple>
#include <vector>

#include "arrays.hpp"
#include "colour.hpp"
#include "pixels.hpp"

namespace py = pybind11;
using namespace declip;

namespace {

constexpr long kCore = 512;
constexpr int kMoments = 10;  // weight, 3 weighted channels, 6 weighted products
constexpr int kPairs[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};

inline int clipped_channels(uint8_t code) { return __builtin_popcount((code | (code >> 3)) & 7); }

class CrossChannel {
   public:
    CrossChannel(const View& v, const Levels& lv, const Space& space, const uint8_t* codes,
                 std::vector<long> boxes, double min_pixels, double ridge, int threads)
        : v_(v), lv_(lv), space_(space), codes_(codes), boxes_(std::move(boxes)), min_pixels_(min_pixels),
          ridge_(ridge), threads_(threads), h_(v.h), w_(v.w) {
        reach_ = 0;
        for (long b : boxes_) reach_ = std::max(reach_, b / 2);
    }

    // The model-space values of every pixel with a nonzero code (index.size() x 3), lost channels
    // estimated.
    template <class T>
    void run(const ClippedIndex& index, double* out) {
        const long rows = (h_ + kCore - 1) / kCore, cols = (w_ + kCore - 1) / kCore;
        std::atomic<long> next{0};
        const long cores = rows * cols;
        const long workers = std::max(1L, std::min<long>(threads_, cores));
        parallel_chunks(workers, [&](long) {
            std::vector<double> sums, x;
            for (long c = next.fetch_add(1); c < cores; c = next.fetch_add(1))
                core<T>(index, (c / cols) * kCore, (c % cols) * kCore, sums, x, out);
        });
    }

   private:
    const View v_;
    const Levels lv_;
    const Space& space_;
    const uint8_t* codes_;
    const std::vector<long> boxes_;
    const double min_pixels_, ridge_;
    const int threads_;
    const long h_, w_;
    long reach_ = 0;

    // Model-space values of n pixels (ys[i], xs[i]) into dst (3 values each).
    template <class T>
    void model_values(const long* ys, const long* xs, long n, double* dst) const {
        double planes[3][kBatch];
        const Space::Planes p = {planes[0], planes[1], planes[2]};
        for (long s = 0; s < n; s += kBatch) {
            const long m = std::min(kBatch, n - s);
            for (long i = 0; i < m; ++i)
                for (int k = 0; k < 3; ++k) {
                    const int ch = lv_.channels == 1 ? 0 : k;
                    planes[k][i] = (load<T>(v_.at(ys[s + i], xs[s + i], ch)) - lv_.low[ch]) * lv_.scale[ch];
                }
            space_.to_model(p, m);
            for (long i = 0; i < m; ++i)
                for (int k = 0; k < 3; ++k) dst[3 * (s + i) + k] = planes[k][i];
        }
    }

    template <class T>
    void core(const ClippedIndex& index, long y0, long x0, std::vector<double>& sums, std::vector<double>& x,
              double* out) const {
        const long y1 = std::min(h_, y0 + kCore), x1 = std::min(w_, x0 + kCore);
        if (!index.any(y0, y1)) return;  // nothing clipped
        bool partly = false;  // a pixel to regress
        for (long y = y0; y < y1 && !partly; ++y) {
            const uint8_t* row = codes_ + y * w_;
            for (long xx = next_set(row, x0, x1, 0x3f); xx < x1 && !partly; xx = next_set(row, xx + 1, x1, 0x3f)) {
                const int n = clipped_channels(row[xx]);
                partly = lv_.channels == 3 && n > 0 && n < 3;
            }
        }
        if (!partly) {  // every clipped pixel keeps its values
            std::vector<long> ys, xs;
            std::vector<double> vals;
            for (long y = y0; y < y1; ++y) {
                const uint8_t* row = codes_ + y * w_;
                ys.clear();
                xs.clear();
                for (long xx = next_set(row, x0, x1, 0x3f); xx < x1; xx = next_set(row, xx + 1, x1, 0x3f)) {
                    ys.push_back(y);
                    xs.push_back(xx);
                }
                if (xs.empty()) continue;
                vals.resize(3 * xs.size());
                model_values<T>(ys.data(), xs.data(), static_cast<long>(xs.size()), vals.data());
                const long base = index.at(y, x0);
                std::memcpy(out + 3 * base, vals.data(), vals.size() * sizeof(double));
            }
            return;
        }
        // The padded core: rows y0 - reach .. y1 + reach, mirrored at the image's edges.
        const long r = reach_, ph = (y1 - y0) + 2 * r, pw = (x1 - x0) + 2 * r;
        x.resize(static_cast<size_t>(ph * pw * 3));
        std::vector<long> ys(static_cast<size_t>(pw)), xs(static_cast<size_t>(pw));
        std::vector<uint8_t> valid(static_cast<size_t>(ph * pw));
        for (long i = 0; i < pw; ++i) xs[i] = reflect_index(x0 - r + i, w_);
        for (long j = 0; j < ph; ++j) {
            const long y = reflect_index(y0 - r + j, h_);
            std::fill(ys.begin(), ys.end(), y);
            model_values<T>(ys.data(), xs.data(), pw, &x[static_cast<size_t>(j * pw * 3)]);
            for (long i = 0; i < pw; ++i) valid[j * pw + i] = codes_[y * w_ + xs[i]] == 0;
        }
        // Integral image of the weighted moments: sums[(j * (pw + 1) + i) * kMoments + m] over rows < j, cols < i.
        const long sw = pw + 1;
        sums.assign(static_cast<size_t>((ph + 1) * sw * kMoments), 0.0);
        for (long j = 0; j < ph; ++j) {
            double run[kMoments] = {};
            const double* above = &sums[static_cast<size_t>((j * sw) * kMoments)];
            double* here = &sums[static_cast<size_t>(((j + 1) * sw) * kMoments)];
            for (long i = 0; i < pw; ++i) {
                if (valid[j * pw + i]) {
                    const double* px = &x[static_cast<size_t>((j * pw + i) * 3)];
                    run[0] += 1.0;
                    for (int k = 0; k < 3; ++k) run[1 + k] += px[k];
                    for (int q = 0; q < 6; ++q) run[4 + q] += px[kPairs[q][0]] * px[kPairs[q][1]];
                }
                double* cell = here + (i + 1) * kMoments;
                const double* up = above + (i + 1) * kMoments;
                for (int m = 0; m < kMoments; ++m) cell[m] = up[m] + run[m];
            }
        }
        for (long y = y0; y < y1; ++y) {
            const uint8_t* row = codes_ + y * w_;
            long next = index.at(y, x0);
            for (long xx = next_set(row, x0, x1, 0x3f); xx < x1; xx = next_set(row, xx + 1, x1, 0x3f)) {
                const long j = y - y0 + r, i = xx - x0 + r;
                const double* px = &x[static_cast<size_t>((j * pw + i) * 3)];
                double* dst = out + 3 * next++;
                for (int k = 0; k < 3; ++k) dst[k] = px[k];
                const uint8_t code = row[xx];
                const int n = clipped_channels(code);
                if (lv_.channels != 3 || n == 0 || n == 3) continue;
                regress(sums, sw, j, i, px, static_cast<uint8_t>((code | (code >> 3)) & 7), dst);
            }
        }
    }

    void regress(const std::vector<double>& sums, long sw, long j, long i, const double* px, uint8_t lost_bits,
                 double* dst) const {
        int lost[2], kept[2], nl = 0, nk = 0;
        for (int k = 0; k < 3; ++k) (lost_bits >> k & 1 ? lost[nl++] : kept[nk++]) = k;
        for (long size : boxes_) {
            const long k = size / 2;
            const long a = j - k, b = j + k + 1, c = i - k, d = i + k + 1;  // rows [a, b), cols [c, d)
            double s[kMoments];
            const double* p11 = &sums[static_cast<size_t>((b * sw + d) * kMoments)];
            const double* p01 = &sums[static_cast<size_t>((a * sw + d) * kMoments)];
            const double* p10 = &sums[static_cast<size_t>((b * sw + c) * kMoments)];
            const double* p00 = &sums[static_cast<size_t>((a * sw + c) * kMoments)];
            for (int m = 0; m < kMoments; ++m) s[m] = (p11[m] - p01[m]) - (p10[m] - p00[m]);
            const double count = std::nearbyint(s[0]);  // a count of pixels: exact
            if (count < min_pixels_) continue;
            double mean[3], cov[3][3];
            for (int q = 0; q < 3; ++q) mean[q] = s[1 + q] / count;
            for (int q = 0; q < 6; ++q) {
                const int u = kPairs[q][0], t = kPairs[q][1];
                cov[u][t] = cov[t][u] = s[4 + q] / count - mean[u] * mean[t];
            }
            if (nk == 1) {  // two lost channels regressed on one kept
                const double var = cov[kept[0]][kept[0]] + ridge_;
                const double dev = px[kept[0]] - mean[kept[0]];
                for (int q = 0; q < nl; ++q) dst[lost[q]] = mean[lost[q]] + dev * (cov[kept[0]][lost[q]] / var);
            } else {  // one lost channel regressed on two kept: a 2 x 2 solve
                const int p = kept[0], q = kept[1], l = lost[0];
                const double a11 = cov[p][p] + ridge_, a12 = cov[p][q], a22 = cov[q][q] + ridge_;
                const double det = a11 * a22 - a12 * a12;
                const double s1 = (a22 * cov[p][l] - a12 * cov[q][l]) / det;
                const double s2 = (a11 * cov[q][l] - a12 * cov[p][l]) / det;
                dst[l] = mean[l] + (px[p] - mean[p]) * s1 + (px[q] - mean[q]) * s2;
            }
            return;
        }
    }
};

std::tuple<py::array_t<int64_t>, py::array_t<double>> cross_channel_rgb(
    const py::array& image, const std::vector<double>& low, const std::vector<double>& high, const Space& space,
    const py::array& codes, const std::vector<long>& boxes, double min_pixels, double ridge, int threads) {
    const View v = view_of(image, false, "image");
    const Levels lv(low, high, 0.0, v.c);
    const uint8_t* c = codes_of(codes, v);
    if (boxes.empty()) throw py::value_error("boxes: give at least one box size");
    for (long b : boxes)
        if (b < 1 || b % 2 == 0 || b > 1025) throw py::value_error("boxes must be odd sizes from 1 to 1025 px");
    if (!(ridge >= 0.0)) throw py::value_error("ridge must be >= 0");
    threads = threads > 0 ? threads : default_threads();
    CrossChannel method(v, lv, space, c, boxes, min_pixels, ridge, threads);
    return estimate_at_clipped(method, image, c, v, threads);
}

}  // namespace

void register_cross_channel(py::module_& m) {
    m.def("cross_channel_rgb", &cross_channel_rgb, py::arg("image"), py::arg("low"), py::arg("high"),
          py::arg("space"), py::arg("codes"), py::arg("boxes"), py::arg("min_pixels"), py::arg("ridge"),
          py::arg("threads") = 0,
          "Cross-channel regression on an H x W x C picture (libdeclip.estimates): the flat indices (int64) of "
          "the pixels with a nonzero clip code, row-major, and their model-space values (n x 3 float64), the "
          "lost channels of partly clipped pixels estimated.");
}
