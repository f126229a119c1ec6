// Sliding-window mean / variance / z-score that stays exact.
//
// Why not the textbook update: a sum/sum-of-squares window over prices near 1e5 that move
// by 1e-4 loses ~11 of its 16 digits to cancellation, and a plain sliding Welford update
// accumulates rounding in the mean until z drifts by ~3e-4 after 1e7 updates.
//
// What we do instead:
//   * Values are kept raw in the ring; statistics are of d = x - anchor, where the anchor
//     sits near the window mean. Near-equal doubles subtract exactly (Sterbenz), so d is
//     exact and small, and every rounding error is relative to |d|, not to |x|.
//   * The window moves by a sliding Welford update (O(1), no cancellation of large terms).
//   * Each update also adds a cheap running bound on the rounding error it may have made
//     (in units of u = 2^-53). When that bound could move the mean by more than
//     kTolerance * std, or the variance by more than kTolerance relative (which is what
//     happens when a large value leaves the window and the variance collapses), the state
//     is re-synchronised exactly: a two-pass over the ring in extended precision, with a
//     fresh anchor at the window mean. Re-syncs are rare (amortised O(1) per update).
//
// Conventions (documented in tripwire.detect):
//   * z(x) is computed against the window *before* x enters it, so a spike is not
//     diluted by itself.
//   * fewer than max(min_periods, ddof + 1) values in the window -> z is NaN.
//   * zero variance -> z is 0.
//   * Non-finite inputs are rejected (and, when positive_only, inputs <= 0): z is NaN, the
//     window is untouched, and the rejection is counted.
//
// No heap allocation happens in this file: the ring is owned by the caller.
#pragma once

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

namespace tripwire {

constexpr double kUnitRoundoff = 0x1p-53;
// Certified relative accuracy of mean (in units of std) and of the variance.
constexpr double kTolerance = 0x1p-30;  // ~9.3e-10
// Safety factor on the first-order error bound.
constexpr double kBoundFactor = 4.0;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Per-window constants, shared by all windows with the same configuration.
struct RollParams {
  uint32_t window = 1;
  uint32_t min_periods = 1;  // effective: max(min_periods, ddof + 1)
  uint32_t ddof = 1;
  double inv_window = 1.0;
  double inv_dof_full = kNaN;  // 1 / (window - ddof), used once the window is full

  static RollParams make(uint32_t window, uint32_t min_periods, uint32_t ddof) {
    RollParams p;
    p.window = window;
    p.ddof = ddof;
    uint32_t floor = ddof + 1;
    p.min_periods = min_periods < floor ? floor : min_periods;
    p.inv_window = 1.0 / static_cast<double>(window);
    if (window > ddof) p.inv_dof_full = 1.0 / static_cast<double>(window - ddof);
    return p;
  }
};

// Mutable state of one window. 56 bytes; trivially copyable (pickled as raw bytes).
struct RollState {
  double anchor = 0.0;    // K
  double mean = 0.0;      // mean of d = x - K over the window
  double m2 = 0.0;        // sum of squared deviations of d
  double err_mean = 0.0;  // bound on |error of mean|, units of u
  double err_m2 = 0.0;    // bound on |error of m2|, units of u
  uint32_t count = 0;     // values in the window (<= window)
  uint32_t pos = 0;       // next ring slot to write (oldest value when full)
  uint32_t resyncs = 0;   // exact re-synchronisations performed
  uint32_t rejected = 0;  // inputs refused (non-finite, or <= 0 when positive_only)
};

// Window statistics in the caller's units.
struct RollSummary {
  double mean;
  double std;
};

inline double roll_mean(const RollState& s) { return s.anchor + s.mean; }

inline double roll_variance(const RollParams& p, const RollState& s) {
  if (s.count <= p.ddof) return kNaN;
  return s.m2 / static_cast<double>(s.count - p.ddof);
}

// z of x against the current window (x is not pushed). Also reports mean and std.
inline double roll_zscore(const RollParams& p, const RollState& s, double x,
                          RollSummary* out = nullptr) {
  if (s.count < p.min_periods) {
    if (out) {
      out->mean = s.count ? roll_mean(s) : kNaN;
      out->std = kNaN;
    }
    return kNaN;
  }
  // Same arithmetic as roll_push_many, so single and batch pushes agree bit for bit.
  const double var = s.count == p.window ? s.m2 * p.inv_dof_full
                                         : s.m2 / static_cast<double>(s.count - p.ddof);
  const double sd = std::sqrt(var);
  if (out) {
    out->mean = roll_mean(s);
    out->std = sd;
  }
  const double q = ((x - s.anchor) - s.mean) / sd;
  return sd == 0.0 ? 0.0 : q;
}

// Correctly rounded sum of doubles (Shewchuk's partials with the half-way correction:
// the algorithm of Python's math.fsum, so both sides of a parity test round alike). The
// result does not depend on the order of the terms. Finite terms only. Non-overlapping
// partials of finite doubles number at most ~40 (2098 exponent bits / 53), so a fixed
// array holds them: no allocation.
class ExactSum {
 public:
  void add(double x) {
    int i = 0;
    for (int j = 0; j < n_; ++j) {
      double y = p_[j];
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double hi = x + y;
      const double lo = y - (hi - x);
      if (lo != 0.0) p_[i++] = lo;
      x = hi;
    }
    n_ = i;
    if (x != 0.0 && n_ < kMax) p_[n_++] = x;
  }
  double value() const {
    int n = n_;
    if (n == 0) return 0.0;
    double hi = p_[--n], lo = 0.0;
    while (n > 0) {
      const double x = hi, y = p_[--n];
      hi = x + y;
      lo = y - (hi - x);
      if (lo != 0.0) break;
    }
    if (n > 0 && ((lo < 0.0 && p_[n - 1] < 0.0) || (lo > 0.0 && p_[n - 1] > 0.0))) {
      const double y = lo * 2.0, x = hi + y;
      if (y == x - hi) hi = x;
    }
    return hi;
  }

 private:
  static constexpr int kMax = 64;
  double p_[kMax];
  int n_ = 0;
};

// The canonical z: what tripwire.detect.reference computes, operation for operation.
// Shift by the newest value (exact for near-equal doubles), mean = fsum(d) / n,
// m2 = fsum((d - mean)^2), sd = sqrt(m2 / (n - ddof)), z = ((x - shift) - mean) / sd.
// O(count). The bank calls it only when the fast z is within kTieBand of a threshold,
// so that whether a value trips is decided by one rule on both sides (no last-ulp ties).
inline double roll_zscore_canonical(const RollParams& p, const RollState& s,
                                    const double* ring, double x, RollSummary* out) {
  const uint32_t n = s.count;
  if (n < p.min_periods || n == 0) return roll_zscore(p, s, x, out);
  const double shift = ring[(s.pos + p.window - 1) % p.window];
  ExactSum a;
  for (uint32_t i = 0; i < n; ++i) a.add(ring[i] - shift);
  const double mean = a.value() / static_cast<double>(n);
  ExactSum b;
  for (uint32_t i = 0; i < n; ++i) {
    const double d = (ring[i] - shift) - mean;
    b.add(d * d);
  }
  const double sd = std::sqrt(b.value() / static_cast<double>(n - p.ddof));
  if (out) {
    out->mean = mean + shift;
    out->std = sd;
  }
  return sd == 0.0 ? 0.0 : ((x - shift) - mean) / sd;
}

// Fast z this close to a threshold (relative) is re-decided by the canonical z. The fast
// z is certified within ~1e-9 of the exact one, so outside the band both sides agree.
constexpr double kTieBand = 1e-6;

#if defined(__GNUC__)
#define TRIPWIRE_COLD __attribute__((noinline, cold))
#define TRIPWIRE_INLINE __attribute__((always_inline)) inline
#else
#define TRIPWIRE_COLD
#define TRIPWIRE_INLINE inline
#endif

// Exact re-synchronisation: anchor at the window mean, then mean and m2 by a two-pass in
// extended precision over the ring. O(count); called rarely. State goes in and out by
// value so that callers' hot loops can keep their state in registers.
TRIPWIRE_COLD inline RollState roll_resynced(const RollParams& p, RollState s,
                                             const double* ring) {
  const uint32_t n = s.count;
  s.resyncs += 1;
  if (n == 0) {
    s.mean = s.m2 = s.err_mean = s.err_m2 = 0.0;
    return s;
  }
  // Ring slots in use: all of them when full, else [0, n).
  const uint32_t used = n;
  const uint32_t newest = (s.pos + p.window - 1) % p.window;
  const double k0 = ring[newest];
  long double acc = 0.0L;
  for (uint32_t i = 0; i < used; ++i) acc += static_cast<long double>(ring[i] - k0);
  const double anchor = static_cast<double>(static_cast<long double>(k0) + acc / n);
  // Second pass around the new anchor. d is rounded to double exactly as push() does, so
  // later removals subtract precisely what was added.
  long double sum = 0.0L;
  for (uint32_t i = 0; i < used; ++i) sum += static_cast<long double>(ring[i] - anchor);
  const long double mean = sum / n;
  long double m2 = 0.0L;
  for (uint32_t i = 0; i < used; ++i) {
    long double dev = static_cast<long double>(ring[i] - anchor) - mean;
    m2 += dev * dev;
  }
  s.anchor = anchor;
  s.mean = static_cast<double>(mean);
  s.m2 = static_cast<double>(m2);
  // The rounded results are within one unit of the extended-precision ones.
  s.err_mean = std::fabs(s.mean);
  s.err_m2 = s.m2;
  return s;
}

// The running error bound no longer certifies kTolerance when
//   |error of m2|   <= F*u*err_m2   exceeds tol * m2, or
//   |error of mean| <= F*u*err_mean exceeds tol * std  (squared: em^2 * dof > tol^2 * m2).
constexpr double kM2Scale = kBoundFactor * kUnitRoundoff / kTolerance;

TRIPWIRE_INLINE bool roll_uncertified(const RollState& s, double dof) {
  const double limit_m2 = s.err_m2 * kM2Scale;
  const double limit_mean = s.err_mean * s.err_mean * (kM2Scale * kM2Scale) * dof;
  return s.m2 < (limit_m2 > limit_mean ? limit_m2 : limit_mean);
}

// Push x into the window. The caller has validated x (finite, in domain). Returns true
// when the state must be re-synchronised (roll_push below does it).
//
// Error bookkeeping, in units of u (first order; kBoundFactor covers the constants):
//   mean' = mean + step                   -> |mean'| + |step|
//   m2'   = m2 + delta * (a + b)          -> |m2'| + 2 |delta| (|a| + |b| + err_mean)
// where a and b are the deviations of the new and old value and err_mean accounts for
// the error already in the mean.
TRIPWIRE_INLINE bool roll_push_nosync(const RollParams& p, RollState& s, double* ring,
                                      double x) {
  if (s.count == 0) {
    s.anchor = x;
    s.mean = s.m2 = s.err_mean = s.err_m2 = 0.0;
    ring[s.pos] = x;
    s.pos = (s.pos + 1 == p.window) ? 0 : s.pos + 1;
    s.count = 1;
    return false;
  }
  const double d = x - s.anchor;
  double delta, step, dev;
  if (s.count < p.window) {
    // Growing: ordinary Welford step, m2 += delta * (d - mean').
    delta = d - s.mean;
    s.count += 1;
    step = delta / static_cast<double>(s.count);
    dev = 0.0;
  } else {
    // Full: replace the oldest value, m2 += delta * ((d - mean') + (d_old - mean)).
    const double d_old = ring[s.pos] - s.anchor;
    delta = d - d_old;
    step = delta * p.inv_window;
    dev = d_old - s.mean;
  }
  const double mean = s.mean + step;
  const double dev_new = d - mean;
  s.m2 += delta * (dev_new + dev);
  s.mean = mean;
  s.err_mean += std::fabs(mean) + std::fabs(step);
  s.err_m2 += std::fabs(s.m2) +
              2.0 * std::fabs(delta) * (std::fabs(dev_new) + std::fabs(dev) + s.err_mean);
  ring[s.pos] = x;
  s.pos = (s.pos + 1 == p.window) ? 0 : s.pos + 1;
  if (s.m2 < 0.0) s.m2 = 0.0;
  if (s.count <= p.ddof) return false;
  return roll_uncertified(s, static_cast<double>(s.count - p.ddof));
}

TRIPWIRE_INLINE void roll_push(const RollParams& p, RollState& s, double* ring, double x) {
  if (roll_push_nosync(p, s, ring, x)) s = roll_resynced(p, s, ring);
}

// Forget everything (ring contents become irrelevant).
inline void roll_clear(RollState& s) {
  const uint32_t resyncs = s.resyncs, rejected = s.rejected;
  s = RollState{};
  s.resyncs = resyncs;
  s.rejected = rejected;
}

}  // namespace tripwire

namespace tripwire {

inline bool roll_valid(double x, bool positive_only) {
  return std::isfinite(x) && (!positive_only || x > 0.0);
}

// z-scores of a whole array (each against the window before it), pushing every valid value.
// Runs in blocks: a sequential pass updates the state and records numerator and variance,
// then a branch-free pass turns them into z-scores (vectorisable sqrt/div).
// Returns the number of rejected inputs (their z is NaN; the window is untouched).
inline uint64_t roll_push_many(const RollParams& p, RollState& state, double* ring,
                               const double* x, double* z, size_t n, bool positive_only) {
  constexpr size_t kBlock = 256;
  alignas(64) double num[kBlock];
  alignas(64) double var[kBlock];
  RollState s = state;  // a local copy stays in registers
  uint64_t rejected = 0;
  for (size_t b0 = 0; b0 < n; b0 += kBlock) {
    const size_t nb = n - b0 < kBlock ? n - b0 : kBlock;
    for (size_t j = 0; j < nb; ++j) {
      const double v = x[b0 + j];
      if (!roll_valid(v, positive_only)) {
        num[j] = var[j] = kNaN;
        ++rejected;
        continue;
      }
      num[j] = (v - s.anchor) - s.mean;
      if (s.count < p.min_periods) {
        var[j] = kNaN;
      } else {
        var[j] = s.count == p.window ? s.m2 * p.inv_dof_full
                                     : s.m2 / static_cast<double>(s.count - p.ddof);
      }
      if (roll_push_nosync(p, s, ring, v)) s = roll_resynced(p, s, ring);
    }
    double* zo = z + b0;
    for (size_t j = 0; j < nb; ++j) {
      const double sd = std::sqrt(var[j]);
      const double q = num[j] / sd;
      zo[j] = sd == 0.0 ? 0.0 : q;
    }
  }
  s.rejected += static_cast<uint32_t>(rejected);
  state = s;
  return rejected;
}

// A self-contained window: parameters, state and its ring (allocated once).
class RollingWindow {
 public:
  RollingWindow(uint32_t window, uint32_t min_periods, uint32_t ddof, bool positive_only)
      : params_(RollParams::make(window, min_periods, ddof)),
        positive_only_(positive_only),
        ring_(new double[window]()) {}
  RollingWindow(const RollingWindow&) = delete;
  RollingWindow& operator=(const RollingWindow&) = delete;

  const RollParams& params() const { return params_; }
  RollState& state() { return state_; }
  const RollState& state() const { return state_; }
  bool positive_only() const { return positive_only_; }
  double* ring() { return ring_.get(); }
  const double* ring() const { return ring_.get(); }
  bool valid(double x) const { return roll_valid(x, positive_only_); }

  // z of x against the window before x; NaN (and counted) if x is rejected.
  double push(double x) {
    if (!valid(x)) {
      state_.rejected += 1;
      return kNaN;
    }
    const double z = roll_zscore(params_, state_, x);
    roll_push(params_, state_, ring_.get(), x);
    return z;
  }
  uint64_t push_many(const double* x, double* z, size_t n) {
    return roll_push_many(params_, state_, ring_.get(), x, z, n, positive_only_);
  }
  double zscore(double x) const { return roll_zscore(params_, state_, x); }
  void clear() { roll_clear(state_); }

 private:
  RollParams params_;
  RollState state_{};
  bool positive_only_;
  std::unique_ptr<double[]> ring_;
};

// The floor the benchmark compares against: a plain stable sliding (Welford) update with a
// z-score out, no exactness guarantees, compiled with the same flags.
inline void plain_sliding_zscores(const double* x, double* z, size_t n, uint32_t window,
                                  double* ring) {
  double mean = 0.0, m2 = 0.0;
  uint32_t count = 0, pos = 0;
  const double inv_w = 1.0 / window;
  const double inv_dof = window > 1 ? 1.0 / (window - 1) : 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (count == window) {
      const double sd = std::sqrt(m2 * inv_dof);
      z[i] = sd > 0.0 ? (v - mean) / sd : 0.0;
      const double old = ring[pos];
      const double delta = v - old;
      const double mn = mean + delta * inv_w;
      m2 += delta * ((v - mn) + (old - mean));
      mean = mn;
    } else {
      z[i] = kNaN;
      ++count;
      const double delta = v - mean;
      mean += delta / count;
      m2 += delta * (v - mean);
    }
    ring[pos] = v;
    pos = pos + 1 == window ? 0 : pos + 1;
  }
}

}  // namespace tripwire
