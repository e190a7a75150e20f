// Tone curves and RGB spaces <-> model space (sRGB-encoded, unclamped), evaluated in double.
// The curve definitions (and their parameters) live in libdeclip/color.py; this is only their
// evaluation, written to match the numpy reference (tests/reference.py) operation by operation.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace declip {

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

    double forward_abs(double x) const {
        switch (kind) {
            case Parametric:
                return x >= d ? std::pow(std::max(a * x + b, 0.0), g) + e : c * x + f;
            case Table:
                return x <= 1.0 ? interp(x, xs, ys) : ys.back() + (x - 1.0) * slope_hi;
            default:
                return x;
        }
    }

    double inverse_abs(double y) const {
        switch (kind) {
            case Parametric: {
                const bool upper = d > 0 ? y >= y_at_d : true;
                if (upper) return (std::pow(std::max(y - e, 0.0), 1.0 / g) - b) / a;
                return c != 0 ? (y - f) / c : 0.0;
            }
            case Table:
                return y <= ys.back() ? interp(y, ys, xs) : 1.0 + (y - ys.back()) / slope_hi;
            default:
                return y;
        }
    }

    // Sign-symmetric, as numpy's sign(v) * f(|v|): out-of-gamut negatives survive.
    static double sign(double v) { return static_cast<double>((v > 0) - (v < 0)); }
    double forward(double v) const { return kind == Linear ? v : sign(v) * forward_abs(std::fabs(v)); }
    double inverse(double v) const { return kind == Linear ? v : sign(v) * inverse_abs(std::fabs(v)); }
};

struct Space {
    std::array<Curve, 3> trc;         // encoded -> linear, per channel
    std::array<double, 9> to_srgb{};  // linear RGB of this space -> linear sRGB, row-major
    std::array<double, 9> from_srgb{};
    Curve srgb;                       // the model's encoding
    bool is_srgb = true;

    static void mul(const std::array<double, 9>& m, const double in[3], double out[3]) {
        for (int i = 0; i < 3; ++i) out[i] = in[0] * m[3 * i] + in[1] * m[3 * i + 1] + in[2] * m[3 * i + 2];
    }

    void to_model(double rgb[3]) const {
        if (is_srgb) return;
        for (int i = 0; i < 3; ++i) rgb[i] = trc[i].forward(rgb[i]);
        linear_to_model(rgb);
    }

    // The second half of to_model, for values already decoded to this space's linear light.
    void linear_to_model(double lin[3]) const {
        double mixed[3];
        mul(to_srgb, lin, mixed);
        for (int i = 0; i < 3; ++i) lin[i] = srgb.inverse(mixed[i]);
    }

    void from_model(double rgb[3]) const {
        if (is_srgb) return;
        double lin[3], mixed[3];
        for (int i = 0; i < 3; ++i) lin[i] = srgb.forward(rgb[i]);
        mul(from_srgb, lin, mixed);
        for (int i = 0; i < 3; ++i) rgb[i] = trc[i].inverse(mixed[i]);
    }
};

}  // namespace declip
