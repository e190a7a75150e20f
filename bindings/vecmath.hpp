// pow over arrays: the one costly function of the colour conversions (gamma and sRGB curves).
//
// glibc's libmvec has vector versions of pow (AVX2: 4 doubles per call, AVX-512: 8) that are 2-3x
// faster than calling scalar pow per value; like numpy's own SIMD pow they are within a few ulp of
// the correctly rounded result, far inside the 1e-6 the float outputs are held to and too small to
// move a rounded 8/16-bit value in practice. CMake defines LIBDECLIP_HAVE_LIBMVEC when it links;
// without it (other C libraries, other CPUs) every value goes through std::pow.
#pragma once

#include <algorithm>
#include <cmath>

#if defined(LIBDECLIP_HAVE_LIBMVEC) && defined(__x86_64__)
#include <immintrin.h>
#define LIBDECLIP_VECTOR_POW 1
extern "C" __m256d _ZGVdN4vv_pow(__m256d, __m256d);  // libmvec, AVX2
extern "C" __m512d _ZGVeN8vv_pow(__m512d, __m512d);  // libmvec, AVX-512
#endif

namespace declip {

#ifdef LIBDECLIP_VECTOR_POW
namespace vecmath_detail {

// The last partial vector is padded (with 1s) rather than finished with scalar pow, so that every
// value goes through the same function: a pixel's result does not depend on where it falls in a
// batch, a tile or a thread's rows.
__attribute__((target("avx512f"))) inline void pow_avx512(double* x, long n, double g) {
    const __m512d vg = _mm512_set1_pd(g);
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(x + i, _ZGVeN8vv_pow(_mm512_loadu_pd(x + i), vg));
    if (i < n) {
        double t[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        std::copy(x + i, x + n, t);
        _mm512_storeu_pd(t, _ZGVeN8vv_pow(_mm512_loadu_pd(t), vg));
        std::copy(t, t + (n - i), x + i);
    }
}

__attribute__((target("avx2"))) inline void pow_avx2(double* x, long n, double g) {
    const __m256d vg = _mm256_set1_pd(g);
    long i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _ZGVdN4vv_pow(_mm256_loadu_pd(x + i), vg));
    if (i < n) {
        double t[4] = {1, 1, 1, 1};
        std::copy(x + i, x + n, t);
        _mm256_storeu_pd(t, _ZGVdN4vv_pow(_mm256_loadu_pd(t), vg));
        std::copy(t, t + (n - i), x + i);
    }
}

}  // namespace vecmath_detail
#endif

enum class PowImpl { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// Chosen once per process from what the build has and the CPU supports.
inline PowImpl pow_impl() {
#ifdef LIBDECLIP_VECTOR_POW
    static const PowImpl impl = __builtin_cpu_supports("avx512f") ? PowImpl::Avx512
                                : __builtin_cpu_supports("avx2")  ? PowImpl::Avx2
                                                                   : PowImpl::Scalar;
    return impl;
#else
    return PowImpl::Scalar;
#endif
}

inline const char* pow_impl_name() {
    switch (pow_impl()) {
        case PowImpl::Avx512: return "libmvec AVX-512";
        case PowImpl::Avx2: return "libmvec AVX2";
        default: return "scalar std::pow";
    }
}

// x[i] = pow(x[i], g) for i < n, in place.
inline void pow_inplace(double* x, long n, double g) {
    switch (pow_impl()) {
#ifdef LIBDECLIP_VECTOR_POW
        case PowImpl::Avx512: vecmath_detail::pow_avx512(x, n, g); return;
        case PowImpl::Avx2: vecmath_detail::pow_avx2(x, n, g); return;
#endif
        default:
            for (long i = 0; i < n; ++i) x[i] = std::pow(x[i], g);
    }
}

}  // namespace declip
