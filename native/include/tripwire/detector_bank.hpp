// Many symbols' detectors in one object: one Ray shard actor holds one bank.
//
// Per symbol, three exact rolling windows (see rolling.hpp):
//   RETURN  trade to trade (return_bucket_ns == 0): z of the log-return price/prev_price.
//           Time-bucketed (return_bucket_ns > 0): z of the log-return from the close of the
//           last completed bucket that had a trade to the current price, divided by
//           sqrt(k), k the buckets between them (a diffusion's variance grows with time, so
//           a sparse symbol's gap returns are comparable). The window holds completed
//           buckets' returns; the running bucket is scored on every tick. Why: the number
//           of tests per day is bounded by buckets, not trades, and a bucket sums many
//           Student-t steps, whose tail is thinner than one step's.
//   VOLUME  z of the trade quantity (bucket 0), or of the quantity summed per time bucket;
//           the running bucket is scored against completed buckets on every tick, so a
//           burst trips before its bucket closes. VolumeStat::kSum: buckets without trades
//           count as zero (a sparse symbol then trips on nearly every trade).
//           VolumeStat::kLogActive: z of log(bucket sum) against buckets that had trades;
//           empty buckets are not data.
//   PRICE   z of the price level
//   DRIFT   (reported as RETURN; drift_buckets > 0, needs return buckets) the move from
//           the close of the newest completed bucket at least drift_buckets before the
//           running one, z = (r - k mean) / (std sqrt(k)) with the RETURN window's mean and
//           std per bucket, k the buckets spanned. Why: a pump or a cascade is a sustained
//           move over minutes, each 10 s bucket of which is ordinary; summed over k buckets
//           the move grows like k and the noise like sqrt(k).
//   RATE    (reported as VOLUME; rate_p > 0, needs log volume buckets) the Poisson tail
//           probability of the running bucket's trade count given the symbol's expected
//           count per bucket mu (a bias-corrected EWMA over time buckets, empty ones
//           included, weight 1/rate_window). Trips when P(N >= n | mu) <= rate_p and
//           n >= rate_min_trades. Scored only where mu <= kRateMaxMean: sparse symbols,
//           where the log count's window is all ones and its std zero. z reported is
//           (n - mu) / sqrt(mu).
// Minimum activity: a VOLUME crossing of a bucket with fewer than min_bucket_trades
// trades does not trip (it is counted as gated): one trade is never a volume burst.
// With volume_bucket_ns == 0 each trade's quantity is scored raw: volume_stat and the
// gate do not apply.
// A per-symbol cool-down turns a cascade of trips into one: while it runs, further trips
// of that symbol are counted as suppressed, not reported.
//
// All memory (states, rings, recent-tick snapshots, output buffers up to their reserve) is
// allocated at construction; push_batch allocates nothing in the steady state.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tripwire/rolling.hpp"

namespace tripwire {

enum Metric : int8_t { kReturn = 0, kVolume = 1, kPrice = 2 };
constexpr int kMetrics = 3;

enum Reject : int8_t { kAccepted = 0, kBadPrice = 1, kBadQty = 2, kOutOfOrder = 3 };
constexpr int kRejectReasons = 4;

enum VolumeStat : int8_t { kVolSum = 0, kVolLogActive = 1, kVolLogCount = 2 };

struct MetricConfig {
  uint32_t window = 1000;
  uint32_t min_periods = 1000;
  double threshold = 6.0;
  bool two_sided = true;
  bool enabled = true;
};

struct BankConfig {
  uint32_t n_symbols = 1;
  std::array<MetricConfig, kMetrics> metric{};
  uint32_t ddof = 1;
  int64_t volume_bucket_ns = 0;  // 0: score each trade's quantity
  int64_t return_bucket_ns = 0;  // 0: trade-to-trade returns
  // Sparse symbols are tested less often (one test per active bucket), so the same false-trip
  // budget allows a lower z: the RETURN threshold is multiplied by min(1, kbar^-exponent),
  // kbar an EWMA (weight 1/64) of the buckets spanned per pushed return. 0: off.
  double return_activity_exponent = 0.0;
  int8_t volume_stat = kVolSum;
  uint32_t min_bucket_trades = 0;  // volume trips need this many trades in the bucket
  uint32_t drift_buckets = 0;      // 0: no drift statistic
  double drift_threshold = 0.0;    // |z| of the drift (scaled by a symbol's RETURN calibration)
  double rate_p = 0.0;             // 0: no rate statistic
  uint32_t rate_window = 0;        // EWMA weight 1/rate_window (time buckets)
  uint32_t rate_min_trades = 0;    // a rate trip needs this many trades in the bucket
  int64_t cooldown_ns = 0;
  uint32_t snapshot_len = 256;
};

// Hot per-symbol state: four cache lines, prefetched ahead of use.
struct alignas(64) SymState {
  RollState roll[kMetrics];
  double prev_price;
  int64_t last_ts;
  int64_t bucket_start;
  double bucket_sum;
  int64_t cooldown_until;
  uint64_t ticks;
  uint32_t snap_pos;
  uint32_t snap_count;
  uint32_t trips;
  uint32_t suppressed;
  uint8_t has_prev;
  uint8_t has_bucket;
  uint8_t has_rbucket;  // a return bucket is running
  uint8_t has_rref;     // a completed return bucket (the reference close) exists
  uint32_t bucket_trades;  // trades in the running volume bucket
  int64_t rb_start;     // running return bucket's start
  int64_t rref_start;   // reference bucket's start
  double rb_close;      // running return bucket's last price
  double rref_price;    // reference close
  double rscale;        // 1 / sqrt(buckets from the reference to the running bucket)
  double threshold[kMetrics];  // per symbol (calibration); the config's by default
  double rk_ewma;       // EWMA of buckets spanned per pushed return (0: none yet)
  double rthr_scale;    // RETURN threshold multiplier from rk_ewma (1 until known)
  uint32_t dhead;       // drift ring: oldest kept completed bucket
  uint32_t dcount;      // drift ring: entries kept
  double rate_ewma;     // trades per volume bucket (EWMA, not yet bias-corrected)
  double rate_weight;   // 1 - (1 - a)^buckets: the EWMA's bias correction
  double rate_mu;       // expected trades per bucket once warm (0: warming or off)
  double dlo, dhi;      // drift cannot trip for dlo < price < dhi (fixed per bucket)
};

struct TickRec {
  int64_t ts;
  double price;
  double qty;
};

struct Trip {
  int64_t row;
  int64_t ts;
  int32_t symbol;
  int8_t metric;
  double z;
  double mean;
  double std;
  double value;
};

struct Rejection {
  int64_t row;
  int8_t reason;
};

struct BankCounters {
  uint64_t ticks = 0;  // accepted
  std::array<uint64_t, kRejectReasons> rejected{};
  uint64_t trips = 0;       // reported trip rows
  uint64_t suppressed = 0;  // tripping rows inside a cool-down
  uint64_t gated = 0;       // volume crossings refused by the minimum-activity rule
  uint64_t tie_checks = 0;  // z within kTieBand of a threshold, decided by the canonical z
  uint64_t drift_trips = 0;  // RETURN trips decided by the drift statistic alone
  uint64_t rate_trips = 0;   // VOLUME trips decided by the rate statistic alone
};

class DetectorBank {
 public:
  explicit DetectorBank(const BankConfig& cfg) : cfg_(cfg) {
    if (cfg.n_symbols == 0) throw std::invalid_argument("n_symbols must be >= 1");
    if (cfg.snapshot_len == 0) throw std::invalid_argument("snapshot_len must be >= 1");
    if (cfg.volume_bucket_ns < 0) throw std::invalid_argument("volume_bucket_ns must be >= 0");
    if (cfg.cooldown_ns < 0) throw std::invalid_argument("cooldown_ns must be >= 0");
    if (cfg.return_bucket_ns < 0) throw std::invalid_argument("return_bucket_ns must be >= 0");
    if (!(cfg.return_activity_exponent >= 0.0 && cfg.return_activity_exponent <= 1.0))
      throw std::invalid_argument("return_activity_exponent must be in [0, 1]");
    if (cfg.drift_buckets > 0 && cfg.return_bucket_ns == 0)
      throw std::invalid_argument("drift_buckets needs return_bucket_ns > 0");
    if (cfg.drift_buckets > 0 && !(std::isfinite(cfg.drift_threshold) && cfg.drift_threshold > 0))
      throw std::invalid_argument("drift_threshold must be finite and > 0");
    if (!(cfg.rate_p >= 0.0 && cfg.rate_p < 1.0))
      throw std::invalid_argument("rate_p must be in [0, 1)");
    if (cfg.rate_p > 0.0 && (cfg.volume_bucket_ns == 0 || cfg.volume_stat == kVolSum))
      throw std::invalid_argument("rate_p needs volume buckets with a log statistic");
    if (cfg.rate_p > 0.0 && cfg.rate_window < 2)
      throw std::invalid_argument("rate_window must be >= 2");
    if (cfg.volume_stat < kVolSum || cfg.volume_stat > kVolLogCount)
      throw std::invalid_argument("volume_stat must be 0 (sum), 1 (log_active) or 2 (log_count)");
    for (int m = 0; m < kMetrics; ++m) {
      if (cfg.metric[m].window == 0) throw std::invalid_argument("window must be >= 1");
      params_[m] = RollParams::make(cfg.metric[m].window, cfg.metric[m].min_periods, cfg.ddof);
      rings_[m].assign(static_cast<size_t>(cfg.n_symbols) * cfg.metric[m].window, 0.0);
    }
    states_.resize(cfg.n_symbols);
    for (auto& s : states_) {
      reset_state(s);
      for (int m = 0; m < kMetrics; ++m) s.threshold[m] = cfg.metric[m].threshold;
    }
    snaps_.assign(static_cast<size_t>(cfg.n_symbols) * cfg.snapshot_len, TickRec{0, 0.0, 0.0});
    dcap_ = cfg.drift_buckets > 0 ? cfg.drift_buckets + 1 : 0;
    dstart_.assign(static_cast<size_t>(cfg.n_symbols) * dcap_, 0);
    dclose_.assign(static_cast<size_t>(cfg.n_symbols) * dcap_, 0.0);
    scratch_ts_.assign(cfg.n_symbols, 0);
    touched_.assign(cfg.n_symbols, 0);
    touched_list_.reserve(cfg.n_symbols);
    trips_.reserve(4096);
    rejections_.reserve(4096);
  }

  const BankConfig& config() const { return cfg_; }
  const BankCounters& counters() const { return counters_; }
  const std::vector<Trip>& trips() const { return trips_; }
  const std::vector<Rejection>& rejections() const { return rejections_; }

  // First row whose symbol id is outside [0, n_symbols), or -1.
  int64_t first_bad_symbol(const int32_t* sym, size_t n) const {
    const uint32_t limit = cfg_.n_symbols;
    for (size_t i = 0; i < n; ++i)
      if (static_cast<uint32_t>(sym[i]) >= limit) return static_cast<int64_t>(i);
    return -1;
  }

  // First row push_batch would reject, and why (or -1). Strict mode calls this to refuse
  // a batch before any state changes; rows are checked in order, so a batch that goes back
  // in time for one symbol is caught too.
  int64_t first_invalid(const int32_t* sym, const int64_t* ts, const double* price,
                        const double* qty, size_t n, int8_t* reason_out) {
    int64_t found = -1;
    for (size_t i = 0; i < n && found < 0; ++i) {
      int8_t r = basic_reason(price[i], qty[i]);
      if (r == kAccepted) {
        const int32_t k = sym[i];
        if (!touched_[k]) {
          touched_[k] = 1;
          touched_list_.push_back(k);
          scratch_ts_[k] = states_[k].last_ts;
        }
        if (ts[i] < scratch_ts_[k]) r = kOutOfOrder;
        else scratch_ts_[k] = ts[i];
      }
      if (r != kAccepted) {
        *reason_out = r;
        found = static_cast<int64_t>(i);
      }
    }
    for (int32_t k : touched_list_) touched_[k] = 0;
    touched_list_.clear();
    return found;
  }

  // Process a batch. Symbol ids must already be checked (first_bad_symbol).
  void push_batch(const int32_t* sym, const int64_t* ts, const double* price, const double* qty,
                  size_t n) {
    trips_.clear();
    rejections_.clear();
    constexpr size_t kAheadState = 16, kAheadRing = 8;
    for (size_t i = 0; i < n; ++i) {
      if (i + kAheadState < n) prefetch_state(sym[i + kAheadState]);
      if (i + kAheadRing < n) prefetch_rings(sym[i + kAheadRing]);
      process(static_cast<int64_t>(i), sym[i], ts[i], price[i], qty[i]);
    }
  }

  // Recent ticks of a symbol, oldest first. Returns the number written (<= snapshot_len).
  size_t snapshot(int32_t symbol, int64_t* ts, double* price, double* qty) const {
    const SymState& s = states_[symbol];
    const TickRec* ring = &snaps_[static_cast<size_t>(symbol) * cfg_.snapshot_len];
    const uint32_t len = cfg_.snapshot_len;
    const uint32_t start = s.snap_count < len ? 0 : s.snap_pos;
    for (uint32_t k = 0; k < s.snap_count; ++k) {
      const TickRec& r = ring[(start + k) % len];
      ts[k] = r.ts;
      price[k] = r.price;
      qty[k] = r.qty;
    }
    return s.snap_count;
  }

  const SymState& state(int32_t symbol) const { return states_[symbol]; }

  // Per-symbol thresholds (calibration): one per metric, each finite and > 0.
  using Thresholds = std::array<double, kMetrics>;
  Thresholds thresholds(int32_t symbol) const {
    const SymState& s = states_[symbol];
    return Thresholds{s.threshold[0], s.threshold[1], s.threshold[2]};
  }
  void set_thresholds(int32_t symbol, const Thresholds& t) {
    for (double v : t)
      if (!(std::isfinite(v) && v > 0.0))
        throw std::invalid_argument("thresholds must be finite and > 0");
    for (int m = 0; m < kMetrics; ++m) states_[symbol].threshold[m] = t[m];
    states_[symbol].dhi = 0.0;  // the drift band is recomputed: score exactly until then
  }
  const RollParams& params(int m) const { return params_[m]; }

  // Forget a symbol's history (e.g. after an exchange outage), keeping its counters.
  void reset_symbol(int32_t symbol) {
    SymState& s = states_[symbol];
    const uint64_t ticks = s.ticks;
    const uint32_t trips = s.trips, suppressed = s.suppressed;
    double th[kMetrics];
    std::memcpy(th, s.threshold, sizeof th);
    reset_state(s);
    std::memcpy(s.threshold, th, sizeof th);
    s.ticks = ticks;
    s.trips = trips;
    s.suppressed = suppressed;
  }

  size_t bytes_per_symbol() const {
    size_t b = sizeof(SymState) + sizeof(TickRec) * cfg_.snapshot_len;
    for (int m = 0; m < kMetrics; ++m) b += sizeof(double) * cfg_.metric[m].window;
    return b + (sizeof(int64_t) + sizeof(double)) * dcap_;
  }

  // Raw state for pickling: the layout is checked by size on restore.
  std::vector<SymState>& raw_states() { return states_; }
  std::vector<double>& raw_ring(int m) { return rings_[m]; }
  std::vector<TickRec>& raw_snaps() { return snaps_; }
  std::vector<int64_t>& raw_drift_starts() { return dstart_; }
  std::vector<double>& raw_drift_closes() { return dclose_; }
  BankCounters& raw_counters() { return counters_; }

 private:
  static void reset_state(SymState& s) {
    std::memset(static_cast<void*>(&s), 0, sizeof(SymState));
    for (auto& r : s.roll) r = RollState{};
    s.rthr_scale = 1.0;
    s.last_ts = std::numeric_limits<int64_t>::min();
    s.cooldown_until = std::numeric_limits<int64_t>::min();
  }

  static int8_t basic_reason(double price, double qty) {
    if (!(std::isfinite(price) && price > 0.0)) return kBadPrice;
    if (!(std::isfinite(qty) && qty >= 0.0)) return kBadQty;
    return kAccepted;
  }

  void prefetch_state(int32_t symbol) const {
#if defined(__GNUC__)
    const char* p = reinterpret_cast<const char*>(&states_[symbol]);
    for (size_t off = 0; off < sizeof(SymState); off += 64) __builtin_prefetch(p + off, 1, 3);
#else
    (void)symbol;
#endif
  }

  void prefetch_rings(int32_t symbol) const {
#if defined(__GNUC__)
    const SymState& s = states_[symbol];
    for (int m = 0; m < kMetrics; ++m)
      __builtin_prefetch(&rings_[m][static_cast<size_t>(symbol) * cfg_.metric[m].window +
                                    s.roll[m].pos], 1, 3);
    __builtin_prefetch(&snaps_[static_cast<size_t>(symbol) * cfg_.snapshot_len + s.snap_pos], 1, 3);
#else
    (void)symbol;
#endif
  }

  double* ring(int m, int32_t symbol) {
    return &rings_[m][static_cast<size_t>(symbol) * cfg_.metric[m].window];
  }
  const double* ring(int m, int32_t symbol) const {
    return &rings_[m][static_cast<size_t>(symbol) * cfg_.metric[m].window];
  }

  // z of x against metric m's window (x not pushed). A fast z within kTieBand of the
  // symbol's threshold is replaced by the canonical z (rolling.hpp), the quantity the
  // reference computes: trips are decided as z >= threshold on that one quantity, so the
  // bank and tripwire.detect.reference agree even on exact ties (log counts make them).
  double zscore(int m, const SymState& s, int32_t symbol, double x, RollSummary* sum) const {
    const double z = roll_zscore(params_[m], s.roll[m], x, sum);
    if (!(z == z)) return z;
    const double a = cfg_.metric[m].two_sided ? std::fabs(z) : z;
    const double t = s.threshold[m] * (m == kReturn ? s.rthr_scale : 1.0);
    if (std::fabs(a - t) > kTieBand * t) return z;
    counters_.tie_checks += 1;
    return roll_zscore_canonical(params_[m], s.roll[m], ring(m, symbol), x, sum);
  }

  // Score x against metric m's window, then push it. Returns z (NaN while warming up).
  double score_push(int m, SymState& s, int32_t symbol, double x, RollSummary* sum) {
    const double z = zscore(m, s, symbol, x, sum);
    roll_push(params_[m], s.roll[m], ring(m, symbol), x);
    return z;
  }

  bool trips_on(int m, double z, const double* th, double scale = 1.0) const {
    const MetricConfig& c = cfg_.metric[m];
    if (!(z == z)) return false;  // NaN never trips
    return (c.two_sided ? std::fabs(z) : z) >= th[m] * scale;
  }
  bool trips_on(int m, double z, const SymState& s) const {
    return trips_on(m, z, s.threshold, m == kReturn ? s.rthr_scale : 1.0);
  }

  static constexpr double kActivityWeight = 1.0 / 64.0;

  static int64_t bucket_of(int64_t ts, int64_t b) {
    return ts >= 0 ? ts - ts % b : ts - ((ts % b) + b) % b;
  }

  // Time-bucketed return: the running bucket's move from the reference close, scaled by
  // 1/sqrt(k). *value gets the unscaled log-return (the move a person reads); z is of the
  // scaled one, and so are the window's mean and std.
  double score_return_bucketed(SymState& s, int32_t symbol, int64_t ts, double price,
                               RollSummary* sum, double* value) {
    const int64_t b = cfg_.return_bucket_ns;
    const int64_t start = bucket_of(ts, b);
    if (!s.has_rbucket) {
      s.has_rbucket = 1;
      s.rb_start = start;
    } else if (start > s.rb_start) {
      if (s.has_rref) {
        const double r = std::log(s.rb_close / s.rref_price) * s.rscale;
        roll_push(params_[kReturn], s.roll[kReturn], ring(kReturn, symbol), r);
        if (cfg_.return_activity_exponent > 0.0) {
          const double k = static_cast<double>((s.rb_start - s.rref_start) / b);
          s.rk_ewma = s.rk_ewma == 0.0 ? k : s.rk_ewma + (k - s.rk_ewma) * kActivityWeight;
          const double f = std::pow(s.rk_ewma, -cfg_.return_activity_exponent);
          s.rthr_scale = f < 1.0 ? f : 1.0;
        }
      }
      if (dcap_) drift_push(s, symbol, s.rb_start, s.rb_close, start);
      s.has_rref = 1;
      s.rref_price = s.rb_close;
      s.rref_start = s.rb_start;
      s.rb_start = start;
      s.rscale = 1.0 / std::sqrt(static_cast<double>((start - s.rref_start) / b));
      if (dcap_) drift_band(s, symbol);
    }
    s.rb_close = price;
    if (!s.has_rref) return kNaN;
    const double r = std::log(price / s.rref_price);
    *value = r;
    return zscore(kReturn, s, symbol, r * s.rscale, sum);
  }

  // Volume: per trade, or the running bucket against completed buckets.
  double score_volume(SymState& s, int32_t symbol, int64_t ts, double qty, RollSummary* sum,
                      double* value) {
    const int64_t b = cfg_.volume_bucket_ns;
    if (b == 0) {
      *value = qty;
      s.bucket_trades = cfg_.min_bucket_trades;  // no buckets: the statistic and gate are off
      return score_push(kVolume, s, symbol, qty, sum);
    }
    const int64_t start = bucket_of(ts, b);
    if (cfg_.volume_stat != kVolSum) return score_volume_log(s, symbol, start, qty, sum, value);
    if (!s.has_bucket) {
      s.has_bucket = 1;
      s.bucket_start = start;
      s.bucket_sum = 0.0;
      s.bucket_trades = 0;
    } else if (start > s.bucket_start) {
      roll_push(params_[kVolume], s.roll[kVolume], ring(kVolume, symbol), s.bucket_sum);
      // Buckets without trades are zero volume; more than a window of them is a window.
      const int64_t empty = (start - s.bucket_start) / b - 1;
      const int64_t zeros = empty < cfg_.metric[kVolume].window ? empty : cfg_.metric[kVolume].window;
      for (int64_t k = 0; k < zeros; ++k)
        roll_push(params_[kVolume], s.roll[kVolume], ring(kVolume, symbol), 0.0);
      s.bucket_start = start;
      s.bucket_sum = 0.0;
      s.bucket_trades = 0;
    }
    s.bucket_sum += qty;
    s.bucket_trades += 1;
    *value = s.bucket_sum;
    return zscore(kVolume, s, symbol, s.bucket_sum, sum);
  }

  // log of the running bucket's sum against the logs of completed buckets that had a
  // positive sum. Reports the linear sum as the value and exp(mean log) (the geometric
  // mean bucket) as the mean, so value / mean stays "this bucket over a typical one".
  double score_volume_log(SymState& s, int32_t symbol, int64_t start, double qty,
                          RollSummary* sum, double* value) {
    if (!s.has_bucket) {
      s.has_bucket = 1;
      s.bucket_start = start;
      s.bucket_sum = 0.0;
      s.bucket_trades = 0;
    } else if (start > s.bucket_start) {
      const double done = cfg_.volume_stat == kVolLogCount ? s.bucket_trades : s.bucket_sum;
      if (done > 0.0)
        roll_push(params_[kVolume], s.roll[kVolume], ring(kVolume, symbol), std::log(done));
      if (cfg_.rate_p > 0.0) rate_close(s, (start - s.bucket_start) / cfg_.volume_bucket_ns - 1);
      s.bucket_start = start;
      s.bucket_sum = 0.0;
      s.bucket_trades = 0;
    }
    s.bucket_sum += qty;
    s.bucket_trades += 1;
    const double v = cfg_.volume_stat == kVolLogCount ? s.bucket_trades : s.bucket_sum;
    *value = v;
    if (!(v > 0.0)) return kNaN;
    const double z = zscore(kVolume, s, symbol, std::log(v), sum);
    sum->mean = std::exp(sum->mean);
    return z;
  }

  // ---- DRIFT: a ring of completed return buckets (start, close), capacity drift_buckets
  // + 1, oldest first. The reference is the newest entry at least drift_buckets before
  // the running bucket; older ones are dropped as time passes (amortised O(1)).
  void drift_advance(SymState& s, int32_t symbol, int64_t running_start) {
    const int64_t cutoff = running_start - static_cast<int64_t>(cfg_.drift_buckets) *
                                               cfg_.return_bucket_ns;
    const int64_t* st = &dstart_[static_cast<size_t>(symbol) * dcap_];
    while (s.dcount >= 2) {
      const uint32_t next = s.dhead + 1 == dcap_ ? 0 : s.dhead + 1;
      if (st[next] > cutoff) break;
      s.dhead = next;
      s.dcount -= 1;
    }
  }
  void drift_push(SymState& s, int32_t symbol, int64_t start, double close, int64_t running) {
    drift_advance(s, symbol, running);
    if (s.dcount == dcap_) {  // cannot happen after advancing (see above); kept bounded
      s.dhead = s.dhead + 1 == dcap_ ? 0 : s.dhead + 1;
      s.dcount -= 1;
    }
    const uint32_t at = (s.dhead + s.dcount) % dcap_;
    dstart_[static_cast<size_t>(symbol) * dcap_ + at] = start;
    dclose_[static_cast<size_t>(symbol) * dcap_ + at] = close;
    s.dcount += 1;
  }
  // The prices between which the drift cannot trip until the bucket rolls over (the
  // reference, the window and the threshold change only then, or with set_thresholds,
  // which clears the band). Narrowed by 1e-6 of the threshold distance so that every
  // price the band lets through untested is far from a tie; those outside it are scored
  // exactly. Saves a log and two divisions per tick.
  void drift_band(SymState& s, int32_t symbol) {
    s.dlo = s.dhi = 0.0;  // empty band: score every tick
    drift_advance(s, symbol, s.rb_start);
    if (s.dcount == 0) {
      s.dhi = std::numeric_limits<double>::infinity();  // no reference: nothing can trip
      return;
    }
    const size_t at = static_cast<size_t>(symbol) * dcap_ + s.dhead;
    const int64_t cutoff = s.rb_start - static_cast<int64_t>(cfg_.drift_buckets) *
                                            cfg_.return_bucket_ns;
    if (dstart_[at] > cutoff) {
      s.dhi = std::numeric_limits<double>::infinity();
      return;
    }
    RollSummary sum{kNaN, kNaN};
    const double z0 = roll_zscore(params_[kReturn], s.roll[kReturn], 0.0, &sum);
    if (!(z0 == z0)) {
      s.dhi = std::numeric_limits<double>::infinity();  // warming up: NaN never trips
      return;
    }
    if (sum.std == 0.0) return;  // z is 0 there; scored exactly (rare)
    const double k = static_cast<double>((s.rb_start - dstart_[at]) / cfg_.return_bucket_ns);
    const double half = drift_threshold(s) * sum.std * std::sqrt(k) * (1.0 - 1e-6);
    s.dlo = dclose_[at] * std::exp(k * sum.mean - half);
    s.dhi = dclose_[at] * std::exp(k * sum.mean + half);
  }

  // z of the drift at price (NaN without a reference or while the window warms up).
  double score_drift(SymState& s, int32_t symbol, double price, double* mean_out,
                     double* std_out, double* value) {
    drift_advance(s, symbol, s.rb_start);
    if (s.dcount == 0) return kNaN;
    const size_t at = static_cast<size_t>(symbol) * dcap_ + s.dhead;
    const int64_t cutoff = s.rb_start - static_cast<int64_t>(cfg_.drift_buckets) *
                                            cfg_.return_bucket_ns;
    if (dstart_[at] > cutoff) return kNaN;
    const double k = static_cast<double>((s.rb_start - dstart_[at]) / cfg_.return_bucket_ns);
    const double r = std::log(price / dclose_[at]);
    RollSummary sum{kNaN, kNaN};
    double z = drift_z(roll_zscore(params_[kReturn], s.roll[kReturn], 0.0, &sum), sum, r, k);
    if (z == z) {
      const double t = drift_threshold(s);
      if (std::fabs(std::fabs(z) - t) <= kTieBand * t) {
        counters_.tie_checks += 1;
        z = drift_z(roll_zscore_canonical(params_[kReturn], s.roll[kReturn],
                                          ring(kReturn, symbol), 0.0, &sum), sum, r, k);
      }
    }
    *mean_out = k * sum.mean;
    *std_out = sum.std * std::sqrt(k);
    *value = r;
    return z;
  }
  static double drift_z(double z0, const RollSummary& sum, double r, double k) {
    if (!(z0 == z0)) return kNaN;  // warming up
    if (sum.std == 0.0) return 0.0;
    return (r - k * sum.mean) / (sum.std * std::sqrt(k));
  }
  double drift_threshold(const SymState& s) const {
    // No activity scale: a sparse symbol's drift is mostly its gap return, already tested
    // at the scaled RETURN threshold; lowering this one too only adds false trips there.
    return cfg_.drift_threshold * (s.threshold[kReturn] / cfg_.metric[kReturn].threshold);
  }

  // ---- RATE: expected trades per volume bucket, and the Poisson tail of the running count.
  static constexpr double kRateMaxMean = 4.0;  // above: the log count's z covers the symbol
  static constexpr uint32_t kRateMaxCount = 64;  // P(N >= 64 | mu <= 4) < 1e-40: enough
  void rate_close(SymState& s, int64_t empty) {
    const double a = 1.0 / static_cast<double>(cfg_.rate_window);
    const double c = static_cast<double>(s.bucket_trades);
    s.rate_ewma = s.rate_ewma + (c - s.rate_ewma) * a;
    s.rate_weight = s.rate_weight + (1.0 - s.rate_weight) * a;
    if (empty > 0) {
      const double q = std::pow(1.0 - a, static_cast<double>(empty));
      s.rate_ewma = s.rate_ewma * q;
      s.rate_weight = 1.0 - (1.0 - s.rate_weight) * q;
    }
    s.rate_mu = s.rate_weight >= 0.5 ? s.rate_ewma / s.rate_weight : 0.0;
  }
  // P(N >= n) for N ~ Poisson(mu), summed from the n-th term up (no cancellation).
  static double poisson_tail(uint32_t n, double mu) {
    double t = std::exp(-mu);
    for (uint32_t j = 1; j <= n; ++j) t = t * mu / static_cast<double>(j);
    double sum = t;
    for (uint32_t j = n + 1; j < n + 200; ++j) {
      t = t * mu / static_cast<double>(j);
      sum = sum + t;
      if (t < sum * 1e-17) break;
    }
    return n == 0 ? 1.0 : sum;
  }
  // Whether the running bucket's count trips the rate rule; fills z/mean/std.
  bool rate_trips(const SymState& s, double* z, RollSummary* sum) const {
    const double mu = s.rate_mu;  // 0 while warming up
    if (!(mu > 0.0 && mu <= kRateMaxMean)) return false;
    if (s.bucket_trades < cfg_.rate_min_trades) return false;
    const uint32_t n = s.bucket_trades < kRateMaxCount ? s.bucket_trades : kRateMaxCount;
    if (poisson_tail(n, mu) > cfg_.rate_p) return false;
    const double sd = std::sqrt(mu);
    *z = (static_cast<double>(s.bucket_trades) - mu) / sd;
    sum->mean = mu;
    sum->std = sd;
    return true;
  }

  void process(int64_t row, int32_t symbol, int64_t ts, double price, double qty) {
    SymState& s = states_[symbol];
    int8_t reason = basic_reason(price, qty);
    if (reason == kAccepted && ts < s.last_ts) reason = kOutOfOrder;
    if (reason != kAccepted) {
      counters_.rejected[reason] += 1;
      rejections_.push_back(Rejection{row, reason});
      return;
    }
    s.last_ts = ts;
    s.ticks += 1;
    counters_.ticks += 1;

    double z[kMetrics] = {kNaN, kNaN, kNaN};
    double value[kMetrics] = {kNaN, qty, price};
    RollSummary sum[kMetrics] = {{kNaN, kNaN}, {kNaN, kNaN}, {kNaN, kNaN}};
    if (cfg_.metric[kReturn].enabled) {
      if (cfg_.return_bucket_ns > 0) {
        z[kReturn] = score_return_bucketed(s, symbol, ts, price, &sum[kReturn], &value[kReturn]);
      } else if (s.has_prev) {
        value[kReturn] = std::log(price / s.prev_price);
        z[kReturn] = score_push(kReturn, s, symbol, value[kReturn], &sum[kReturn]);
      }
    }
    s.prev_price = price;
    s.has_prev = 1;
    if (cfg_.metric[kVolume].enabled)
      z[kVolume] = score_volume(s, symbol, ts, qty, &sum[kVolume], &value[kVolume]);
    if (cfg_.metric[kPrice].enabled)
      z[kPrice] = score_push(kPrice, s, symbol, price, &sum[kPrice]);

    TickRec* snap = &snaps_[static_cast<size_t>(symbol) * cfg_.snapshot_len];
    snap[s.snap_pos] = TickRec{ts, price, qty};
    s.snap_pos = s.snap_pos + 1 == cfg_.snapshot_len ? 0 : s.snap_pos + 1;
    if (s.snap_count < cfg_.snapshot_len) s.snap_count += 1;

    if (trips_on(kVolume, z[kVolume], s) && s.bucket_trades < cfg_.min_bucket_trades) {
      z[kVolume] = kNaN;  // one trade (or a few) is not a burst: counted, never reported
      counters_.gated += 1;
    }
    bool hit[kMetrics];
    for (int m = 0; m < kMetrics; ++m) hit[m] = trips_on(m, z[m], s);
    // The slower statistics speak only when the fast ones are silent (one row per metric).
    bool by_drift = false, by_rate = false;
    if (dcap_ && cfg_.metric[kReturn].enabled && !hit[kReturn] && s.has_rref &&
        !(price > s.dlo && price < s.dhi)) {
      double dm = kNaN, dsd = kNaN, dv = kNaN;
      const double zd = score_drift(s, symbol, price, &dm, &dsd, &dv);
      if (zd == zd && std::fabs(zd) >= drift_threshold(s)) {
        z[kReturn] = zd;
        sum[kReturn] = RollSummary{dm, dsd};
        value[kReturn] = dv;
        hit[kReturn] = by_drift = true;
      }
    }
    if (cfg_.rate_p > 0.0 && cfg_.metric[kVolume].enabled && !hit[kVolume]) {
      double zr = kNaN;
      RollSummary rs{kNaN, kNaN};
      if (rate_trips(s, &zr, &rs)) {
        z[kVolume] = zr;
        sum[kVolume] = rs;
        value[kVolume] = static_cast<double>(s.bucket_trades);
        hit[kVolume] = by_rate = true;
      }
    }
    bool tripped = false;
    for (int m = 0; m < kMetrics; ++m) tripped |= hit[m];
    if (!tripped) return;
    if (dcap_) {
      // A move already alarmed on is not news again: the drift measures from after it
      // (no reference until drift_buckets more buckets complete), so an event's own move
      // does not re-trip minutes later, after its cool-down.
      s.dcount = 0;
      s.dlo = 0.0;
      s.dhi = std::numeric_limits<double>::infinity();
    }
    if (ts < s.cooldown_until) {
      s.suppressed += 1;
      counters_.suppressed += 1;
      return;
    }
    // max - cooldown cannot overflow (cooldown >= 0); max - ts could, for ts < 0.
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    s.cooldown_until = ts > kMax - cfg_.cooldown_ns ? kMax : ts + cfg_.cooldown_ns;
    s.trips += 1;
    counters_.trips += 1;
    counters_.drift_trips += by_drift;
    counters_.rate_trips += by_rate;
    for (int m = 0; m < kMetrics; ++m) {
      if (!hit[m]) continue;
      trips_.push_back(Trip{row, ts, symbol, static_cast<int8_t>(m), z[m], sum[m].mean,
                            sum[m].std, value[m]});
    }
  }

  BankConfig cfg_;
  RollParams params_[kMetrics];
  std::vector<SymState> states_;
  std::vector<double> rings_[kMetrics];
  std::vector<TickRec> snaps_;
  uint32_t dcap_ = 0;            // drift ring capacity per symbol (0: off)
  std::vector<int64_t> dstart_;  // drift rings: completed buckets' starts
  std::vector<double> dclose_;   // and closes
  mutable BankCounters counters_;  // tie_checks counts inside const scoring
  std::vector<Trip> trips_;
  std::vector<Rejection> rejections_;
  std::vector<int64_t> scratch_ts_;
  std::vector<uint8_t> touched_;
  std::vector<int32_t> touched_list_;
};

}  // namespace tripwire
