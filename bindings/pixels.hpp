// Pixel access for the native core: strided H x W x C views of any supported dtype, float16
// conversions, rounding into the output dtype, and a small parallel-for over rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

namespace declip {

// IEEE 754 binary16, stored as its bits: C++17 has no half type.
struct Half {
    uint16_t bits;
};

inline double half_to_double(uint16_t h) {
    const int sign = (h >> 15) & 1;
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    double v;
    if (exponent == 0) {
        v = std::ldexp(static_cast<double>(mantissa), -24);
    } else if (exponent == 31) {
        v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    } else {
        v = std::ldexp(static_cast<double>(mantissa + 1024), exponent - 25);
    }
    return sign ? -v : v;
}

// Round a double straight to the nearest binary16 (ties to even), as numpy's astype does; going
// through float first would round twice.
inline uint16_t double_to_half(double d) {
    const uint16_t sign = std::signbit(d) ? 0x8000 : 0;
    if (std::isnan(d)) return static_cast<uint16_t>(sign | 0x7e00);
    double a = std::fabs(d);
    if (a >= 65520.0) return static_cast<uint16_t>(sign | 0x7c00);  // rounds to infinity
    int e;
    std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    const int quantum_exp = std::max(e - 11, -24);  // spacing of binary16 values near a
    // Scaling by a power of two is exact, and nearbyint rounds ties to even.
    const double q = std::nearbyint(std::ldexp(a, -quantum_exp));
    a = std::ldexp(q, quantum_exp);
    if (a > 65504.0) return static_cast<uint16_t>(sign | 0x7c00);
    if (a < 6.103515625e-05) {  // subnormal (a multiple of 2^-24 below 2^-14)
        return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::ldexp(a, 24)));
    }
    const double m = std::frexp(a, &e);
    const int mantissa = static_cast<int>(std::ldexp(m * 2.0 - 1.0, 10));
    return static_cast<uint16_t>(sign | ((e - 1 + 15) << 10) | mantissa);
}

template <class T>
inline double load(const char* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return static_cast<double>(v);
}

template <>
inline double load<Half>(const char* p) {
    uint16_t b;
    std::memcpy(&b, p, 2);
    return half_to_double(b);
}

// Store a value into dtype T: integers are rounded half to even and clamped to the type's range
// (numpy's clip(rint(v)) then astype), floats rounded to nearest.
template <class T>
inline void store(char* p, double v) {
    if constexpr (std::is_integral_v<T>) {
        double r = std::nearbyint(v);
        r = std::min(std::max(r, static_cast<double>(std::numeric_limits<T>::min())),
                     static_cast<double>(std::numeric_limits<T>::max()));
        const T t = static_cast<T>(r);
        std::memcpy(p, &t, sizeof(T));
    } else {
        const T t = static_cast<T>(v);
        std::memcpy(p, &t, sizeof(T));
    }
}

template <>
inline void store<Half>(char* p, double v) {
    const uint16_t b = double_to_half(v);
    std::memcpy(p, &b, 2);
}

// A strided H x W x C view of numpy memory (strides in bytes, any sign).
struct View {
    char* data = nullptr;
    long h = 0, w = 0, c = 0;
    long sy = 0, sx = 0, sc = 0;

    char* at(long y, long x, long ch) const { return data + y * sy + x * sx + ch * sc; }
};

// Run fn(begin, end) over [0, n) split into contiguous chunks, on up to `threads` threads.
template <class Fn>
void parallel_rows(long n, int threads, Fn&& fn) {
    const long min_rows_per_thread = 8;
    long chunks = std::min<long>(threads, std::max<long>(1, n / min_rows_per_thread));
    if (chunks <= 1) {
        fn(0L, n);
        return;
    }
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(chunks - 1));
    const long step = (n + chunks - 1) / chunks;
    for (long i = 1; i < chunks; ++i) {
        const long b = i * step, e = std::min(n, b + step);
        if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
    }
    fn(0L, std::min(n, step));
    for (auto& t : pool) t.join();
}

// Run fn(i) for each i in [0, chunks), each on its own thread (the caller's thread takes chunk 0).
template <class Fn>
void parallel_chunks(long chunks, Fn&& fn) {
    std::vector<std::thread> pool;
    for (long i = 1; i < chunks; ++i) pool.emplace_back([&fn, i] { fn(i); });
    if (chunks > 0) fn(0L);
    for (auto& t : pool) t.join();
}

// The first column at or after x whose code has a bit of `mask` set (w if none), eight codes at a time.
inline long next_set(const uint8_t* row, long x, long w, uint8_t mask) {
    const uint64_t bits = 0x0101010101010101ULL * mask;
    for (uint64_t eight; x + 8 <= w; x += 8) {
        std::memcpy(&eight, row + x, 8);
        if (eight & bits) break;
    }
    while (x < w && !(row[x] & mask)) ++x;
    return x;
}

// Where each pixel with a nonzero clip code (bits 0-5) lands in a row-major list of them: the index of
// each row's first one, and each one's flat index (y * w + x).
class ClippedIndex {
   public:
    ClippedIndex(const uint8_t* codes, long h, long w, int threads) : codes_(codes), h_(h), w_(w) {
        first_.assign(static_cast<size_t>(h + 1), 0);
        parallel_rows(h, threads, [&](long b, long e) {
            for (long y = b; y < e; ++y) {
                const uint8_t* row = codes + y * w;
                long n = 0;
                for (long x = next_set(row, 0, w, 0x3f); x < w; x = next_set(row, x + 1, w, 0x3f)) ++n;
                first_[static_cast<size_t>(y + 1)] = n;
            }
        });
        for (long y = 0; y < h; ++y) first_[static_cast<size_t>(y + 1)] += first_[static_cast<size_t>(y)];
    }

    long size() const { return first_[static_cast<size_t>(h_)]; }

    // The index of the first one in row y at or after column x (of row y + 1 when none).
    long at(long y, long x = 0) const {
        const uint8_t* row = codes_ + y * w_;
        long index = first_[static_cast<size_t>(y)];
        for (long c = next_set(row, 0, x, 0x3f); c < x; c = next_set(row, c + 1, x, 0x3f)) ++index;
        return index;
    }

    // Whether rows [y0, y1) hold one.
    bool any(long y0, long y1) const { return first_[static_cast<size_t>(y1)] > first_[static_cast<size_t>(y0)]; }

    // Every one's flat index, in order, into out (size() values).
    void flat(int64_t* out, int threads) const {
        parallel_rows(h_, threads, [&](long b, long e) {
            for (long y = b; y < e; ++y) {
                const uint8_t* row = codes_ + y * w_;
                int64_t* dst = out + first_[static_cast<size_t>(y)];
                for (long x = next_set(row, 0, w_, 0x3f); x < w_; x = next_set(row, x + 1, w_, 0x3f))
                    *dst++ = y * w_ + x;
            }
        });
    }

   private:
    const uint8_t* codes_;
    long h_, w_;
    std::vector<long> first_;
};

// Index i of an axis of length n mirrored at both ends with the edge value repeated (scipy.ndimage's
// "reflect", numpy.pad's "symmetric"), periodic with period 2n for any i.
inline long reflect_index(long i, long n) {
    const long period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

}  // namespace declip
