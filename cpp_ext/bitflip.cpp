// nfdeploy._kernel: in-place bit-error injection into a byte buffer.
//
// Two fault models, both applied to a C-contiguous, writable numpy uint8 array:
//   flip_bits: every candidate bit flips independently with probability p (XOR).
//   stuck_at:  every candidate cell is faulty with probability p; a faulty cell is
//              stuck at 0 (AND) or at 1 (OR) with probability 1/2 each. Only cells whose
//              stored bit differs from the stuck value change.
// A "candidate" bit is one whose position (0 = LSB .. 7 = MSB within each byte) is set in
// bit_mask. Both functions return the number of bits actually changed.
//
// ---------------------------------------------------------------------------------------
// Determinism scheme (counter-based; reproduced bit-exactly by tests/bitflip_reference.py)
// ---------------------------------------------------------------------------------------
//   G        = 0x9E3779B97F4A7C15 (the SplitMix64 increment); all arithmetic is mod 2**64.
//   mix64(z) = SplitMix64 finaliser: z ^= z>>30; z *= 0xBF58476D1CE4E5B9;
//              z ^= z>>27; z *= 0x94D049BB133111EB; z ^= z>>31.
//   model    = 0 for flip_bits, MODEL_STUCK = 0x53545543_4B2D4154 ("STUCK-AT") for stuck_at,
//              so the two models draw from unrelated streams for the same (seed, stream).
//   h        = mix64(seed + G); h = mix64((h ^ stream) + G); h = mix64((h ^ model) + G)
//   The buffer is cut into blocks of BLOCK_BYTES (65536) bytes; the last may be shorter.
//   key_b    = mix64((h ^ b) + G)                          for block index b = 0, 1, ...
//   x_{b,i}  = mix64(key_b + i * G)                        for draws i = 1, 2, ...
//              (i.e. the SplitMix64 sequence seeded with key_b).
//   Within block b the candidate bits are numbered k = 0 .. nbytes_b * pc - 1
//   (pc = popcount(bit_mask)): k -> byte k / pc of the block, and the (k % pc)-th set bit
//   of bit_mask counted from the LSB.
//   Sparse path (p < DENSE_MIN_P = 0.25): geometric gaps, so the cost scales with the number
//     of faults. Draw x, u = ((x >> 11) + 1) * 2**-53 (a double in (0, 1], 53 random bits),
//     r = LOG(u) * (1 / log1p(-p)), gap = floor(r). Starting at k = 0, the next faulty
//     candidate is k + gap; stop when k + gap >= nbits_b; otherwise act on candidate k + gap
//     and continue from k + gap + 1. log1p is the C library's; LOG is log_times() below, a
//     fixed sequence of IEEE double operations (no fast-math, no FMA contraction) accurate
//     to a few ulp, so the pattern does not depend on the platform's libm for log.
//   Dense path (p >= DENSE_MIN_P): one draw per candidate, in candidate order k = 0, 1, ...;
//     the candidate is faulty iff (x >> 11) < ceil(p * 2**53), i.e. u = (x >> 11) * 2**-53 < p.
//   stuck_at: the stuck value of a faulty cell is bit 0 of the same draw x that selected it
//     (the sparse/dense decisions only use bits 11..63).
// Consequences: the pattern is a pure function of (seed, stream, model, buffer length,
// p, bit_mask, buffer contents for stuck_at's count); it does not depend on `threads`,
// which only distributes whole blocks over std::threads. Patterns are NOT nested across
// rates: the flips drawn at p1 < p2 are not in general a subset of those drawn at p2.
// Precision: every probability is realised to within 2**-53 (e.g. with the sparse path a
// draw of u == 1 gives gap 0, so rates below ~1.1e-16 per draw are not resolved).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace py = pybind11;

namespace {

constexpr std::size_t BLOCK_BYTES = 65536;
constexpr uint64_t GAMMA = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t MODEL_FLIP = 0;
constexpr uint64_t MODEL_STUCK = 0x535455434B2D4154ULL;  // "STUCK-AT"
// From this rate on, one draw per candidate bit is cheaper than one log() per fault
// (measured: ~1.7 ns per candidate vs ~6.7 ns per fault on a 2-core AMD EPYC VM).
constexpr double DENSE_MIN_P = 0.25;

// Portable popcount of a byte (std::popcount needs C++20).
inline uint32_t popcount8(uint8_t v) {
    uint32_t x = v;
    x = x - ((x >> 1) & 0x55u);
    x = (x & 0x33u) + ((x >> 2) & 0x33u);
    return (x + (x >> 4)) & 0x0Fu;
}

inline uint64_t mix64(uint64_t z) {
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z;
}

inline uint64_t model_key(uint64_t seed, uint64_t stream, uint64_t model) {
    uint64_t h = mix64(seed + GAMMA);
    h = mix64((h ^ stream) + GAMMA);
    h = mix64((h ^ model) + GAMMA);
    return h;
}

inline uint64_t block_key(uint64_t h, uint64_t b) { return mix64((h ^ b) + GAMMA); }

struct Mask {
    uint8_t bits = 0xFF;  // the mask itself
    uint32_t pc = 8;      // popcount
    uint8_t sel[8] = {};  // sel[j]: single-bit byte for the j-th set bit (LSB first)
    explicit Mask(uint8_t m) : bits(m), pc(popcount8(m)) {
        uint32_t j = 0;
        for (int pos = 0; pos < 8; ++pos) {
            if (m & (1u << pos)) sel[j++] = static_cast<uint8_t>(1u << pos);
        }
    }
};

enum class Model { Flip, Stuck };

struct Job {
    uint8_t* data;
    std::size_t nbytes;
    double p;
    uint64_t h;  // model key
    Mask mask;
    Model model;
};

// Apply one fault to candidate `sel` of byte `*cell`; returns 1 if the bit changed.
template <Model M>
inline uint64_t apply(uint8_t* cell, uint8_t sel, uint64_t x) {
    if constexpr (M == Model::Flip) {
        (void)x;
        *cell ^= sel;
        return 1;
    } else {
        const uint8_t old = *cell;
        const uint8_t now = (x & 1) ? static_cast<uint8_t>(old | sel)
                                    : static_cast<uint8_t>(old & static_cast<uint8_t>(~sel));
        *cell = now;
        return old != now;
    }
}

// ----- vectorisable helpers ------------------------------------------------------------
// On x86-64 Linux (GCC/Clang) these are compiled twice, for AVX2 and for the baseline ISA,
// and the loader picks one (ifunc). Only IEEE +, -, *, / and bit operations are used, and
// the build passes -ffp-contract=off, so both versions give bit-identical results.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define NF_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NF_CLONES
#endif

inline double bits_to_double(uint64_t b) {
    double d;
    std::memcpy(&d, &b, sizeof d);
    return d;
}
inline uint64_t double_to_bits(double d) {
    uint64_t b;
    std::memcpy(&b, &d, sizeof b);
    return b;
}

// log(u) for u in (0, 1] with a fixed sequence of IEEE operations (relative error below
// ~3 ulp), so the numpy oracle can reproduce it bit for bit on any platform:
//   u = f * 2**e with f in [sqrt(1/2), sqrt(2)); s = (f - 1) / (f + 1); z = s * s;
//   P = Horner(z; 2/23, 2/21, ..., 2/3) evaluated from 2/23 down to 2/3;
//   log(u) = e * LN2 + s * (2 + z * P)          (2 atanh(s) series, truncated after s**23)
constexpr double LN2 = 0.6931471805599453;         // nearest double to ln 2
constexpr double SQRT_HALF = 0.7071067811865476;  // nearest double to sqrt(1/2)
constexpr double TWO52 = 4503599627370496.0;      // 2**52
constexpr uint64_t TWO52_BITS = 0x4330000000000000ULL;

NF_CLONES void log_times(const double* __restrict u, double* __restrict out, int n,
                         double scale) {
    for (int j = 0; j < n; ++j) {
        const uint64_t b = double_to_bits(u[j]);
        // frexp: u = f * 2**e, f in [0.5, 1); e = biased exponent - 1022 (exact in double).
        double e = bits_to_double((b >> 52) | TWO52_BITS) - (TWO52 + 1022.0);
        uint64_t fb = (b & 0x000FFFFFFFFFFFFFULL) | 0x3FE0000000000000ULL;
        // if f < sqrt(1/2): f *= 2, e -= 1 (done with bit operations so it vectorises)
        const uint64_t low = bits_to_double(fb) < SQRT_HALF ? ~0ULL : 0ULL;
        fb += low & 0x0010000000000000ULL;
        e -= bits_to_double(low & 0x3FF0000000000000ULL);
        const double f = bits_to_double(fb);
        const double s = (f - 1.0) / (f + 1.0);
        const double z = s * s;
        double P = 2.0 / 23.0;
        P = P * z + 2.0 / 21.0;
        P = P * z + 2.0 / 19.0;
        P = P * z + 2.0 / 17.0;
        P = P * z + 2.0 / 15.0;
        P = P * z + 2.0 / 13.0;
        P = P * z + 2.0 / 11.0;
        P = P * z + 2.0 / 9.0;
        P = P * z + 2.0 / 7.0;
        P = P * z + 2.0 / 5.0;
        P = P * z + 2.0 / 3.0;
        out[j] = (e * LN2 + s * (2.0 + z * P)) * scale;
    }
}

// Dense path decisions for n consecutive candidates whose draws are x_{first+1..first+n}:
// hit[c] = 0xFF if faulty else 0; one[c] = 0xFF if faulty and stuck at 1 else 0.
NF_CLONES void dense_draws(uint64_t key, uint64_t first, int n, uint64_t threshold,
                           uint8_t* __restrict hit, uint8_t* __restrict one) {
    for (int c = 0; c < n; ++c) {
        const uint64_t x = mix64(key + (first + static_cast<uint64_t>(c) + 1) * GAMMA);
        const uint8_t h = (x >> 11) < threshold ? 0xFF : 0;
        hit[c] = h;
        one[c] = static_cast<uint8_t>(h & static_cast<uint8_t>(0 - (x & 1)));
    }
}

// ----- per-block kernels ------------------------------------------------------------

// Faults found by the sparse path go through a short delay line: the target byte is
// prefetched when the fault is found and modified DELAY faults later, so cache misses
// overlap with computing further gaps instead of stalling the core (the bytes usually
// come straight from memory, e.g. right after a copy). Every cell is hit at most once, so
// the order of application does not matter.
template <Model M>
class FaultSink {
   public:
    void add(uint8_t* cell, uint8_t sel, uint8_t low) {
        Entry& slot = ring_[added_ & (DELAY - 1)];
        if (added_ >= DELAY) apply_entry(slot);
        slot = Entry{cell, sel, low};
        prefetch(cell);
        ++added_;
    }
    // Apply everything still pending; returns the number of bits changed overall.
    uint64_t finish() {
        for (uint64_t i = added_ > DELAY ? added_ - DELAY : 0; i < added_; ++i) {
            apply_entry(ring_[i & (DELAY - 1)]);
        }
        const uint64_t changed = M == Model::Flip ? added_ : changed_;
        added_ = 0;
        changed_ = 0;
        return changed;
    }

   private:
    static constexpr uint64_t DELAY = 64;  // a power of two
    struct Entry {
        uint8_t* cell;
        uint8_t sel;
        uint8_t low;
    };
    static void prefetch(const uint8_t* cell) {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(cell, 1, 3);
#else
        (void)cell;
#endif
    }
    void apply_entry(const Entry& e) {
        if constexpr (M == Model::Flip) {
            *e.cell ^= e.sel;  // every flip changes its bit; counted in finish()
        } else {
            changed_ += apply<M>(e.cell, e.sel, e.low);
        }
    }

    Entry ring_[DELAY] = {};
    uint64_t added_ = 0;
    uint64_t changed_ = 0;
};

// Sparse path: geometric gaps over the candidate index space of one block. Uniforms are
// drawn in batches, their logs computed in a vectorised pass, and the gaps accumulated in
// a scalar scan that hands each fault to the sink. Batching changes only how many draws
// are computed ahead (a few past the block end are discarded), never the pattern.
template <Model M, bool Full>
void sparse_block(uint8_t* data, std::size_t nbytes, uint64_t key, double inv_log_q, double p,
                  const Mask& mask, FaultSink<M>& sink) {
    constexpr int BATCH = 256;
    const uint64_t nbits = static_cast<uint64_t>(nbytes) * mask.pc;
    alignas(64) double u[BATCH];
    alignas(64) double r[BATCH];
    alignas(64) uint8_t low[BATCH];  // bit 0 of each draw: the stuck value
    uint64_t state = key;
    uint64_t k = 0;
    for (;;) {
        // Draw about as many uniforms as faults are still expected (plus slack).
        const double expect = static_cast<double>(nbits - k) * p;
        int n = expect >= BATCH - 16 ? BATCH : (static_cast<int>(expect * 1.25) + 16) & ~7;
        if (n > BATCH) n = BATCH;
        for (int j = 0; j < n; ++j) {
            state += GAMMA;
            const uint64_t x = mix64(state);
            u[j] = static_cast<double>(static_cast<int64_t>((x >> 11) + 1)) * 0x1p-53;
            low[j] = static_cast<uint8_t>(x & 1);
        }
        log_times(u, r, n, inv_log_q);  // r = log(u) / log(1 - p) >= 0; gap = floor(r)
        for (int j = 0; j < n; ++j) {
            // floor(r) < rem  <=>  r < rem for an integer rem; `!(...)` also stops on NaN.
            if (!(r[j] < static_cast<double>(static_cast<int64_t>(nbits - k)))) return;
            k += static_cast<uint64_t>(static_cast<int64_t>(r[j]));  // trunc == floor (r >= 0)
            if constexpr (Full) {
                sink.add(data + (k >> 3), static_cast<uint8_t>(1u << (k & 7)), low[j]);
            } else {
                const uint32_t kk = static_cast<uint32_t>(k);  // < 2**19 within a block
                const uint32_t byte = kk / mask.pc;
                sink.add(data + byte, mask.sel[kk - byte * mask.pc], low[j]);
            }
            ++k;
        }
    }
}

// Dense path: one draw per candidate bit, in candidate order.
template <Model M>
uint64_t dense_block(uint8_t* data, std::size_t nbytes, uint64_t key, uint64_t threshold,
                     const Mask& mask) {
    constexpr std::size_t CHUNK = 512;  // bytes per pass
    alignas(64) uint8_t hit[CHUNK * 8];
    alignas(64) uint8_t one[CHUNK * 8];
    const uint32_t pc = mask.pc;
    uint64_t changed = 0;
    uint64_t drawn = 0;
    for (std::size_t start = 0; start < nbytes; start += CHUNK) {
        const std::size_t nb = std::min(CHUNK, nbytes - start);
        const int nc = static_cast<int>(nb * pc);
        dense_draws(key, drawn, nc, threshold, hit, one);
        drawn += static_cast<uint64_t>(nc);
        for (std::size_t i = 0; i < nb; ++i) {
            uint8_t h = 0;
            uint8_t o = 0;
            if (pc == 8) {
                // Gather bit j of byte j of 8 flag bytes (0x00/0xFF) into one byte.
                uint64_t hv, ov;
                std::memcpy(&hv, hit + i * 8, 8);
                std::memcpy(&ov, one + i * 8, 8);
                h = static_cast<uint8_t>(((hv & 0x8040201008040201ULL) * 0x0101010101010101ULL) >> 56);
                o = static_cast<uint8_t>(((ov & 0x8040201008040201ULL) * 0x0101010101010101ULL) >> 56);
            } else {
                for (uint32_t j = 0; j < pc; ++j) {
                    h |= hit[i * pc + j] & mask.sel[j];
                    o |= one[i * pc + j] & mask.sel[j];
                }
            }
            uint8_t* cell = data + start + i;
            const uint8_t old = *cell;
            const uint8_t now = M == Model::Flip
                                    ? static_cast<uint8_t>(old ^ h)
                                    : static_cast<uint8_t>((old & static_cast<uint8_t>(~h)) | o);
            *cell = now;
            changed += popcount8(static_cast<uint8_t>(old ^ now));
        }
    }
    return changed;
}

template <Model M>
uint64_t run_blocks_model(const Job& job, std::size_t first, std::size_t last) {
    uint64_t changed = 0;
    FaultSink<M> sink;
    const double inv_log_q = 1.0 / std::log1p(-job.p);
    // dense: u < p  <=>  (x >> 11) < ceil(p * 2**53); exact because p * 2**53 is exact.
    const uint64_t threshold = static_cast<uint64_t>(std::ceil(job.p * 0x1p53));
    for (std::size_t b = first; b < last; ++b) {
        uint8_t* data = job.data + b * BLOCK_BYTES;
        const std::size_t nbytes = std::min(BLOCK_BYTES, job.nbytes - b * BLOCK_BYTES);
        const uint64_t key = block_key(job.h, b);
        if (job.p >= DENSE_MIN_P) {
            changed += dense_block<M>(data, nbytes, key, threshold, job.mask);
        } else if (job.mask.pc == 8) {
            sparse_block<M, true>(data, nbytes, key, inv_log_q, job.p, job.mask, sink);
        } else {
            sparse_block<M, false>(data, nbytes, key, inv_log_q, job.p, job.mask, sink);
        }
    }
    return changed + sink.finish();
}

uint64_t run_blocks(const Job& job, std::size_t first, std::size_t last) {
    return job.model == Model::Flip ? run_blocks_model<Model::Flip>(job, first, last)
                                    : run_blocks_model<Model::Stuck>(job, first, last);
}

uint64_t run_job(const Job& job, std::size_t threads) {
    if (job.nbytes == 0 || job.p == 0.0) return 0;
    if (job.model == Model::Flip && job.p == 1.0) {  // every candidate flips
        for (std::size_t i = 0; i < job.nbytes; ++i) job.data[i] ^= job.mask.bits;
        return static_cast<uint64_t>(job.nbytes) * job.mask.pc;
    }
    const std::size_t nblocks = (job.nbytes + BLOCK_BYTES - 1) / BLOCK_BYTES;
    const std::size_t nt = std::min(threads, nblocks);
    if (nt <= 1) return run_blocks(job, 0, nblocks);
    // Thread t gets the contiguous block range [t*nblocks/nt, (t+1)*nblocks/nt).
    std::vector<uint64_t> counts(nt, 0);
    std::vector<std::thread> pool;
    pool.reserve(nt - 1);
    auto range = [&](std::size_t t) {
        counts[t] = run_blocks(job, t * nblocks / nt, (t + 1) * nblocks / nt);
    };
    try {
        for (std::size_t t = 1; t < nt; ++t) pool.emplace_back(range, t);
    } catch (...) {
        for (auto& th : pool) th.join();
        throw;
    }
    range(0);
    for (auto& th : pool) th.join();
    uint64_t total = 0;
    for (uint64_t c : counts) total += c;
    return total;
}

// ----- argument handling -------------------------------------------------------------

std::string py_repr(const py::handle& h) { return py::repr(h).cast<std::string>(); }

uint64_t to_u64(const py::object& v, const char* fname, const char* name) {
    PyObject* idx = PyNumber_Index(v.ptr());
    if (idx == nullptr) {
        PyErr_Clear();
        throw py::type_error(std::string(fname) + ": " + name + " must be an integer in " +
                             "0..2**64-1, got " + py_repr(v) + " of type " +
                             py_repr(py::type::handle_of(v)));
    }
    py::int_ as_int = py::reinterpret_steal<py::int_>(idx);
    const unsigned long long r = PyLong_AsUnsignedLongLong(as_int.ptr());
    if (r == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::value_error(std::string(fname) + ": " + name +
                              " must be an integer in 0..2**64-1, got " + py_repr(as_int));
    }
    return static_cast<uint64_t>(r);
}

Job make_job(py::array_t<uint8_t, py::array::c_style>& buf, double p, const py::object& seed,
             const py::object& stream, long long bit_mask, long long threads, Model model,
             const char* fname, std::size_t* nthreads) {
    if (!(p >= 0.0 && p <= 1.0)) {  // also rejects NaN
        std::ostringstream msg;
        msg << fname << ": p must be a probability in [0, 1], got " << p;
        throw py::value_error(msg.str());
    }
    if (bit_mask < 1 || bit_mask > 255) {
        throw py::value_error(std::string(fname) + ": bit_mask must be in 1..255 (bit 0 = LSB), got " +
                              std::to_string(bit_mask));
    }
    if (threads < 1) {
        throw py::value_error(std::string(fname) + ": threads must be >= 1, got " +
                              std::to_string(threads));
    }
    const uint64_t s = to_u64(seed, fname, "seed");
    const uint64_t st = to_u64(stream, fname, "stream");
    if (!buf.writeable()) {
        throw py::value_error(std::string(fname) +
                              ": buf is read-only; errors are injected in place, so pass a "
                              "writable array (e.g. arr.copy()); nothing was modified");
    }
    *nthreads = static_cast<std::size_t>(threads);
    const uint64_t mkey = model == Model::Flip ? MODEL_FLIP : MODEL_STUCK;
    return Job{buf.mutable_data(), static_cast<std::size_t>(buf.size()), p,
               model_key(s, st, mkey), Mask(static_cast<uint8_t>(bit_mask)), model};
}

uint64_t entry(py::array_t<uint8_t, py::array::c_style> buf, double p, const py::object& seed,
               const py::object& stream, long long bit_mask, long long threads, Model model,
               const char* fname) {
    std::size_t nt = 1;
    const Job job = make_job(buf, p, seed, stream, bit_mask, threads, model, fname, &nt);
    py::gil_scoped_release release;
    return run_job(job, nt);
}

// Second overload, reached only when `buf` is not a C-contiguous uint8 ndarray: explain why
// instead of pybind11's generic "incompatible function arguments". Never converts or copies.
[[noreturn]] void refuse(const py::object& buf, const char* fname) {
    const std::string hint =
        " (no copy is made: pass a C-contiguous, writable uint8 array, e.g. "
        "nfdeploy.faults.kernel.byte_view(arr))";
    py::module_ np = py::module_::import("numpy");
    if (!py::isinstance(buf, np.attr("ndarray"))) {
        throw py::type_error(std::string(fname) + ": buf must be a numpy.ndarray of dtype uint8, got " +
                             py_repr(py::type::handle_of(buf)) + hint);
    }
    py::array arr = py::reinterpret_borrow<py::array>(buf);
    if (!arr.dtype().is(py::dtype::of<uint8_t>()) &&
        !arr.dtype().equal(py::dtype::of<uint8_t>())) {
        throw py::type_error(std::string(fname) + ": buf must have dtype uint8, got " +
                             py::str(arr.dtype()).cast<std::string>() + hint);
    }
    if (!(arr.flags() & py::array::c_style)) {
        throw py::type_error(std::string(fname) + ": buf must be C-contiguous, got a "
                             "non-contiguous array" + hint);
    }
    throw py::type_error(std::string(fname) + ": unsupported buf " + py_repr(buf) + hint);
}

}  // namespace

PYBIND11_MODULE(_kernel, m) {
    m.doc() =
        "In-place bit-error injection (flip / stuck-at) into uint8 buffers. "
        "See cpp_ext/bitflip.cpp for the determinism scheme; use nfdeploy.faults.kernel.";
    m.attr("BLOCK_BYTES") = py::int_(BLOCK_BYTES);

    const char* flip_doc =
        "flip_bits(buf, p, seed, stream, bit_mask=0xFF, threads=1) -> int\n\n"
        "Flip every bit whose position (0=LSB..7=MSB) is set in bit_mask independently with "
        "probability p, in place. buf: C-contiguous writable uint8 ndarray (never copied). "
        "seed, stream: integers in 0..2**64-1. Returns the number of bits changed. The "
        "pattern depends only on (seed, stream, len(buf), p, bit_mask), not on threads.";
    const char* stuck_doc =
        "stuck_at(buf, p, seed, stream, bit_mask=0xFF, threads=1) -> int\n\n"
        "Make every cell in bit_mask faulty with probability p; a faulty cell is stuck at 0 "
        "(AND) or 1 (OR) with probability 1/2 each, in place. Returns the number of bits "
        "actually changed (a stuck cell changes only a bit that differs).";

    m.def(
        "flip_bits",
        [](py::array_t<uint8_t, py::array::c_style> buf, double p, const py::object& seed,
           const py::object& stream, long long bit_mask, long long threads) {
            return entry(std::move(buf), p, seed, stream, bit_mask, threads, Model::Flip,
                         "flip_bits");
        },
        flip_doc, py::arg("buf").noconvert(), py::arg("p"), py::arg("seed"), py::arg("stream"),
        py::arg("bit_mask") = 0xFF, py::arg("threads") = 1);
    m.def(
        "flip_bits",
        [](const py::object& buf, double, const py::object&, const py::object&, long long,
           long long) -> uint64_t { refuse(buf, "flip_bits"); },
        "Any other `buf` is refused with a TypeError that says why (nothing is copied).",
        py::arg("buf"), py::arg("p"), py::arg("seed"), py::arg("stream"),
        py::arg("bit_mask") = 0xFF, py::arg("threads") = 1);

    m.def(
        "stuck_at",
        [](py::array_t<uint8_t, py::array::c_style> buf, double p, const py::object& seed,
           const py::object& stream, long long bit_mask, long long threads) {
            return entry(std::move(buf), p, seed, stream, bit_mask, threads, Model::Stuck,
                         "stuck_at");
        },
        stuck_doc, py::arg("buf").noconvert(), py::arg("p"), py::arg("seed"), py::arg("stream"),
        py::arg("bit_mask") = 0xFF, py::arg("threads") = 1);
    m.def(
        "stuck_at",
        [](const py::object& buf, double, const py::object&, const py::object&, long long,
           long long) -> uint64_t { refuse(buf, "stuck_at"); },
        "Any other `buf` is refused with a TypeError that says why (nothing is copied).",
        py::arg("buf"), py::arg("p"), py::arg("seed"), py::arg("stream"),
        py::arg("bit_mask") = 0xFF, py::arg("threads") = 1);
}
