// Tone curves and RGB spaces <-> model space (sRGB-encoded, unclamped), evaluated in double.
// The curve definitions (and their parameters) live in libdeclip/color.py; this is only their
// evaluation, written to match the numpy reference (tests/reference.py) operation by operation.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "vecmath.hpp"

namespace declip {

// Values per batch of the array conversions (stack buffers of this size).
constexpr long kBatch = 256;

struct Curve {
    enum Kind { Linear = 0, Parametric = 1, Table = 2 };
    int kind = Linear;
    // Parametric (ICC type 4): Y = (aX + b)^g + e for X >= d, else cX + f.
    double g = 1, a = 1, b = 0, c = 0, d = 0, e = 0, f = 0, y_at_d = 0;
    // Table: samples ys at xs on [0, 1], extended beyond 1 with the last slope.
    std::vector<double> xs, ys;
    double slope_hi = 1;

    // numpy.interp's formula (main path): slope * (x - xp[j]) + fp[j], exact at the samples.
    static double interp(double x, const std::vector<double>& xp, const std::vector<double>& fp) {
        const size_t n = xp.size();
        if (x >= xp[n - 1]) return fp[n - 1];
        if (x < xp[0]) return fp[0];
        const size_t j = static_cast<size_t>(std::upper_bound(xp.begin(), xp.end(), x) - xp.begin()) - 1;
        if (xp[j] == x) return fp[j];
        const double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        return slope * (x - xp[j]) + fp[j];
    }

    // In place over n values, sign-symmetric as numpy's sign(v) * f(|v|): out-of-gamut negatives
    // survive. The values are taken in batches so that pow runs over arrays (vecmath.hpp).
    void forward(double* v, long n) const {
        if (kind == Linear) return;
        for (long s = 0; s < n; s += kBatch) {
            double* u = v + s;
            const long m = std::min(kBatch, n - s);
            if (kind == Table) {
                for (long i = 0; i < m; ++i) {
                    const double x = std::fabs(u[i]);
                    u[i] = sign(u[i]) * (x <= 1.0 ? interp(x, xs, ys) : ys.back() + (x - 1.0) * slope_hi);
                }
                continue;
            }
            // Parametric (ICC type 4): Y = (aX + b)^g + e for X >= d, else cX + f.
            double base[kBatch];
            for (long i = 0; i < m; ++i) base[i] = std::max(a * std::fabs(u[i]) + b, 0.0);
            pow_inplace(base, m, g);
            for (long i = 0; i < m; ++i) {
                const double x = std::fabs(u[i]);
                u[i] = sign(u[i]) * (x >= d ? base[i] + e : c * x + f);
            }
        }
    }

    void inverse(double* v, long n) const {
        if (kind == Linear) return;
        for (long s = 0; s < n; s += kBatch) {
            double* u = v + s;
            const long m = std::min(kBatch, n - s);
            if (kind == Table) {
                for (long i = 0; i < m; ++i) {
                    const double y = std::fabs(u[i]);
                    u[i] = sign(u[i]) * (y <= ys.back() ? interp(y, ys, xs) : 1.0 + (y - ys.back()) / slope_hi);
                }
                continue;
            }
            double base[kBatch];
            for (long i = 0; i < m; ++i) base[i] = std::max(std::fabs(u[i]) - e, 0.0);
            pow_inplace(base, m, 1.0 / g);
            for (long i = 0; i < m; ++i) {
                const double y = std::fabs(u[i]);
                const bool upper = d > 0 ? y >= y_at_d : true;
                u[i] = sign(u[i]) * (upper ? (base[i] - b) / a : (c != 0 ? (y - f) / c : 0.0));
            }
        }
    }

    static double sign(double v) { return static_cast<double>((v > 0) - (v < 0)); }
};

struct Space {
    std::array<Curve, 3> trc;         // encoded -> linear, per channel
    std::array<double, 9> to_srgb{};  // linear RGB of this space -> linear sRGB, row-major
    std::array<double, 9> from_srgb{};
    Curve srgb;                       // the model's encoding
    bool is_srgb = true;

    // Channel planes: p[k] holds n values of channel k; converted in place.
    using Planes = double* const[3];

    static void mix(const std::array<double, 9>& m, Planes p, long n) {
        for (long i = 0; i < n; ++i) {
            const double in[3] = {p[0][i], p[1][i], p[2][i]};
            for (int k = 0; k < 3; ++k) p[k][i] = in[0] * m[3 * k] + in[1] * m[3 * k + 1] + in[2] * m[3 * k + 2];
        }
    }

    void to_model(Planes p, long n) const {
        if (is_srgb) return;
        for (int k = 0; k < 3; ++k) trc[k].forward(p[k], n);
        linear_to_model(p, n);
    }

    // The second half of to_model, for values already decoded to this space's linear light.
    void linear_to_model(Planes p, long n) const {
        mix(to_srgb, p, n);
        for (int k = 0; k < 3; ++k) srgb.inverse(p[k], n);
    }

    void from_model(Planes p, long n) const {
        if (is_srgb) return;
        for (int k = 0; k < 3; ++k) srgb.forward(p[k], n);
        mix(from_srgb, p, n);
        for (int k = 0; k < 3; ++k) trc[k].inverse(p[k], n);
    }
};

}  // namespace declip
