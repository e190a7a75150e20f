// libdeclip._native.without_specks: clip codes with the specks cleared (libdeclip.mask.without_specks).
// A speck is a component of clipped pixels (nonzero code, 8-connected) of at most max_pixels pixels.
//
// One raster pass, no labels: a search from a clipped pixel not seen yet explores its component
// until it has seen more than max_pixels pixels or reached a pixel already known to belong to a large
// component; what it saw is then marked large. Otherwise it has seen the whole component, which is a
// speck, and its codes are cleared. In raster order a clipped pixel with a clipped neighbour above or
// to the left was seen already, and, not being in a speck (the neighbour's component is its own), was
// marked large: its search stops at once. So each search explores at most max_pixels + 1 pixels and
// only pixels with no earlier clipped neighbour start one: time is linear in the image, with one byte
// of state a pixel. The result equals labelling the whole image (scipy.ndimage.label, a 3 x 3
// structure) and clearing the components of at most max_pixels pixels.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace {

enum : uint8_t { kUnseen = 0, kLarge = 1, kSearching = 2 };

std::tuple<py::array_t<uint8_t>, long> without_specks(
        const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& codes, int max_pixels) {
    if (codes.ndim() != 2) throw py::value_error("clip codes must be H x W uint8");
    if (max_pixels < 0) throw py::value_error("max_pixels must be >= 0");
    const long h = static_cast<long>(codes.shape(0)), w = static_cast<long>(codes.shape(1));
    const uint8_t* src = codes.data();
    std::vector<long> specks;  // flat indices of the pixels to clear
    {
        py::gil_scoped_release release;
        std::vector<uint8_t> state(static_cast<size_t>(h) * static_cast<size_t>(w), kUnseen);
        std::vector<long> found;
        found.reserve(static_cast<size_t>(max_pixels) + 9);
        for (long y = 0; y < h; ++y) {
            for (long x = 0; x < w; ++x) {
                const long start = y * w + x;
                if (!src[start] || state[start] != kUnseen) continue;
                found.clear();
                found.push_back(start);
                state[start] = kSearching;
                bool large = max_pixels == 0;
                for (size_t next = 0; next < found.size() && !large; ++next) {
                    const long p = found[next], py_ = p / w, px = p % w;
                    for (long dy = -1; dy <= 1 && !large; ++dy) {
                        const long qy = py_ + dy;
                        if (qy < 0 || qy >= h) continue;
                        for (long dx = -1; dx <= 1; ++dx) {
                            const long qx = px + dx;
                            if (qx < 0 || qx >= w || (dy == 0 && dx == 0)) continue;
                            const long q = qy * w + qx;
                            if (!src[q] || state[q] == kSearching) continue;
                            if (state[q] == kLarge || static_cast<long>(found.size()) >= max_pixels) {
                                large = true;
                                break;
                            }
                            state[q] = kSearching;
                            found.push_back(q);
                        }
                    }
                }
                for (const long p : found) state[p] = kLarge;  // a speck's pixels are never reached again
                if (!large) specks.insert(specks.end(), found.begin(), found.end());
            }
        }
    }
    if (specks.empty()) return {py::array_t<uint8_t>(codes), 0L};
    py::array_t<uint8_t> out({h, w});
    uint8_t* dst = out.mutable_data();
    std::memcpy(dst, src, static_cast<size_t>(h) * static_cast<size_t>(w));
    for (const long p : specks) dst[p] = 0;
    return {out, static_cast<long>(specks.size())};
}

}  // namespace

void register_specks(py::module_& m) {
    m.def("without_specks", &without_specks, py::arg("codes"), py::arg("max_pixels"),
          "H x W uint8 clip codes with the clipped components (8-connected) of at most max_pixels pixels "
          "cleared, and how many pixels were cleared; codes itself is unchanged.");
}
