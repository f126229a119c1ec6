// pybind11 bindings: tripwire._native. No logic lives here beyond argument checking and
// moving arrays in and out; the detectors are the header-only core in include/tripwire.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <sstream>
#include <string>

#include "arrays.hpp"
#include "tripwire/detector_bank.hpp"
#include "tripwire/rolling.hpp"

namespace py = pybind11;
using namespace tripwire;
using tripwire_bind::expect_array;

namespace {

constexpr int kPickleVersion = 1;      // RollingStats
constexpr int kBankPickleVersion = 3;  // DetectorBank: + drift rings, rate state
const char* const kMetricNames[kMetrics] = {"return", "volume", "price"};
const char* const kReasonNames[kRejectReasons] = {"accepted", "bad_price", "bad_qty",
                                                  "out_of_order"};

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(v.size());
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(T));
  return out;
}

template <class T>
py::bytes raw_bytes(const std::vector<T>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T>
void restore_bytes(std::vector<T>& v, const py::bytes& b, const char* what) {
  std::string s = b;
  if (s.size() != v.size() * sizeof(T))
    throw py::value_error(std::string("pickled ") + what + " has the wrong size");
  if (!s.empty()) std::memcpy(static_cast<void*>(v.data()), s.data(), s.size());
}

std::string describe_value(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

// ---------------------------------------------------------------- RollingStats

class PyRollingStats {
 public:
  PyRollingStats(uint32_t window, py::object min_periods, uint32_t ddof, bool positive_only,
                 bool strict)
      : win_(check_window(window), resolve_min_periods(window, min_periods), check_ddof(ddof),
             positive_only),
        strict_(strict) {}

  static uint32_t check_window(uint32_t w) {
    if (w < 1) throw py::value_error("window must be >= 1");
    return w;
  }
  static uint32_t check_ddof(uint32_t d) {
    if (d > 1) throw py::value_error("ddof must be 0 or 1");
    return d;
  }
  static uint32_t resolve_min_periods(uint32_t window, const py::object& mp) {
    if (mp.is_none()) return window;
    long v = mp.cast<long>();
    if (v < 1) throw py::value_error("min_periods must be >= 1");
    if (v > static_cast<long>(window)) throw py::value_error("min_periods must be <= window");
    return static_cast<uint32_t>(v);
  }

  void refuse(double x, int64_t index) const {
    std::string what = positive_only() ? "finite and > 0" : "finite";
    std::string where = index >= 0 ? " at index " + std::to_string(index) : "";
    throw py::value_error("value " + describe_value(x) + where + " rejected: must be " + what);
  }

  double push(double x) {
    if (strict_ && !win_.valid(x)) refuse(x, -1);
    last_z_ = win_.push(x);
    return last_z_;
  }

  py::array_t<double> push_many(const py::handle& xs) {
    auto x = expect_array<double>(xs, "values");
    const size_t n = static_cast<size_t>(x.shape(0));
    const double* px = x.data();
    if (strict_) {
      for (size_t i = 0; i < n; ++i)
        if (!win_.valid(px[i])) refuse(px[i], static_cast<int64_t>(i));
    }
    py::array_t<double> z(n);
    double* pz = z.mutable_data();
    {
      py::gil_scoped_release nogil;
      win_.push_many(px, pz, n);
    }
    if (n) last_z_ = pz[n - 1];
    return z;
  }

  bool positive_only() const { return win_.positive_only(); }
  const RollParams& params() const { return win_.params(); }
  const RollState& state() const { return win_.state(); }
  double zscore(double x) const { return win_.zscore(x); }
  double last_z() const { return last_z_; }
  bool strict() const { return strict_; }
  void clear() {
    win_.clear();
    last_z_ = kNaN;
  }

  double mean() const { return state().count ? roll_mean(state()) : kNaN; }
  double variance() const { return roll_variance(params(), state()); }

  py::tuple getstate() const {
    const auto& p = params();
    py::bytes st(reinterpret_cast<const char*>(&state()), sizeof(RollState));
    py::bytes ring(reinterpret_cast<const char*>(win_.ring()), sizeof(double) * p.window);
    return py::make_tuple(kPickleVersion, p.window, p.min_periods, p.ddof, positive_only(),
                          strict_, last_z_, st, ring);
  }

  static PyRollingStats* setstate(const py::tuple& t) {
    if (t.size() != 9 || t[0].cast<int>() != kPickleVersion)
      throw py::value_error("unsupported RollingStats pickle");
    auto* r = new PyRollingStats(t[1].cast<uint32_t>(), py::int_(t[2].cast<uint32_t>()),
                                 t[3].cast<uint32_t>(), t[4].cast<bool>(), t[5].cast<bool>());
    r->last_z_ = t[6].cast<double>();
    std::string st = t[7].cast<py::bytes>();
    std::string ring = t[8].cast<py::bytes>();
    if (st.size() != sizeof(RollState) || ring.size() != sizeof(double) * r->params().window) {
      delete r;
      throw py::value_error("RollingStats pickle has the wrong size");
    }
    std::memcpy(static_cast<void*>(&r->win_.state()), st.data(), st.size());
    std::memcpy(r->win_.ring(), ring.data(), ring.size());
    return r;
  }

 private:
  RollingWindow win_;
  bool strict_;
  double last_z_ = kNaN;
};

// ---------------------------------------------------------------- DetectorBank

BankConfig make_bank_config(uint32_t n_symbols, const std::vector<uint32_t>& windows,
                            const std::vector<uint32_t>& min_periods,
                            const std::vector<double>& thresholds,
                            const std::vector<bool>& two_sided, const std::vector<bool>& enabled,
                            uint32_t ddof, int64_t volume_bucket_ns, int64_t cooldown_ns,
                            uint32_t snapshot_len, int64_t return_bucket_ns, int volume_stat,
                            uint32_t min_bucket_trades, double return_activity_exponent,
                            uint32_t drift_buckets = 0, double drift_threshold = 0.0,
                            double rate_p = 0.0, uint32_t rate_window = 0,
                            uint32_t rate_min_trades = 0) {
  auto need3 = [](size_t n, const char* what) {
    if (n != kMetrics) throw py::value_error(std::string(what) + " needs 3 entries");
  };
  need3(windows.size(), "windows");
  need3(min_periods.size(), "min_periods");
  need3(thresholds.size(), "thresholds");
  need3(two_sided.size(), "two_sided");
  need3(enabled.size(), "enabled");
  if (ddof > 1) throw py::value_error("ddof must be 0 or 1");
  BankConfig c;
  c.n_symbols = n_symbols;
  c.ddof = ddof;
  c.volume_bucket_ns = volume_bucket_ns;
  c.cooldown_ns = cooldown_ns;
  c.snapshot_len = snapshot_len;
  c.return_bucket_ns = return_bucket_ns;
  if (volume_stat < kVolSum || volume_stat > kVolLogCount)
    throw py::value_error("volume_stat must be 0 (sum), 1 (log_active) or 2 (log_count)");
  c.volume_stat = static_cast<int8_t>(volume_stat);
  c.min_bucket_trades = min_bucket_trades;
  c.return_activity_exponent = return_activity_exponent;
  c.drift_buckets = drift_buckets;
  c.drift_threshold = drift_threshold;
  c.rate_p = rate_p;
  c.rate_window = rate_window;
  c.rate_min_trades = rate_min_trades;
  for (int m = 0; m < kMetrics; ++m) {
    c.metric[m] = MetricConfig{windows[m], min_periods[m], thresholds[m], two_sided[m],
                               enabled[m]};
  }
  return c;
}

class PyDetectorBank {
 public:
  explicit PyDetectorBank(const BankConfig& c) : bank_(c) {}

  py::dict push_batch(const py::handle& sym_o, const py::handle& ts_o, const py::handle& px_o,
                      const py::handle& qty_o, bool strict) {
    auto sym = expect_array<int32_t>(sym_o, "symbol_ids");
    auto ts = expect_array<int64_t>(ts_o, "ts_ns");
    auto px = expect_array<double>(px_o, "price");
    auto qty = expect_array<double>(qty_o, "qty");
    const py::ssize_t n = sym.shape(0);
    if (ts.shape(0) != n || px.shape(0) != n || qty.shape(0) != n) {
      throw py::value_error("array lengths differ: symbol_ids=" + std::to_string(n) +
                            ", ts_ns=" + std::to_string(ts.shape(0)) +
                            ", price=" + std::to_string(px.shape(0)) +
                            ", qty=" + std::to_string(qty.shape(0)));
    }
    const int32_t* s = sym.data();
    const int64_t bad = bank_.first_bad_symbol(s, static_cast<size_t>(n));
    if (bad >= 0) {
      throw py::value_error("symbol id " + std::to_string(s[bad]) + " at row " +
                            std::to_string(bad) + " is out of range [0, " +
                            std::to_string(bank_.config().n_symbols) + ")");
    }
    if (strict) {
      int8_t reason = kAccepted;
      const int64_t row = bank_.first_invalid(s, ts.data(), px.data(), qty.data(),
                                              static_cast<size_t>(n), &reason);
      if (row >= 0) {
        throw py::value_error("row " + std::to_string(row) + " rejected (" +
                              kReasonNames[reason] + "): symbol " + std::to_string(s[row]) +
                              ", ts_ns " + std::to_string(ts.data()[row]) + ", price " +
                              describe_value(px.data()[row]) + ", qty " +
                              describe_value(qty.data()[row]) + "; batch not applied");
      }
    }
    {
      py::gil_scoped_release nogil;
      bank_.push_batch(s, ts.data(), px.data(), qty.data(), static_cast<size_t>(n));
    }
    return collect();
  }

  py::dict collect() const {
    const auto& trips = bank_.trips();
    const size_t k = trips.size();
    py::array_t<int64_t> row(k), ts(k);
    py::array_t<int32_t> symbol(k);
    py::array_t<int8_t> metric(k);
    py::array_t<double> z(k), mean(k), std_(k), value(k);
    for (size_t i = 0; i < k; ++i) {
      const Trip& t = trips[i];
      row.mutable_data()[i] = t.row;
      ts.mutable_data()[i] = t.ts;
      symbol.mutable_data()[i] = t.symbol;
      metric.mutable_data()[i] = t.metric;
      z.mutable_data()[i] = t.z;
      mean.mutable_data()[i] = t.mean;
      std_.mutable_data()[i] = t.std;
      value.mutable_data()[i] = t.value;
    }
    const auto& rej = bank_.rejections();
    py::array_t<int64_t> rrow(rej.size());
    py::array_t<int8_t> rreason(rej.size());
    for (size_t i = 0; i < rej.size(); ++i) {
      rrow.mutable_data()[i] = rej[i].row;
      rreason.mutable_data()[i] = rej[i].reason;
    }
    py::dict d;
    d["row"] = row;
    d["ts_ns"] = ts;
    d["symbol_id"] = symbol;
    d["metric"] = metric;
    d["z"] = z;
    d["mean"] = mean;
    d["std"] = std_;
    d["value"] = value;
    d["rejected_row"] = rrow;
    d["rejected_reason"] = rreason;
    return d;
  }

  int32_t check_symbol(long symbol) const {
    if (symbol < 0 || symbol >= static_cast<long>(bank_.config().n_symbols)) {
      throw py::value_error("symbol id " + std::to_string(symbol) + " is out of range [0, " +
                            std::to_string(bank_.config().n_symbols) + ")");
    }
    return static_cast<int32_t>(symbol);
  }

  py::tuple snapshot(long symbol) const {
    const int32_t k = check_symbol(symbol);
    const size_t cap = bank_.config().snapshot_len;
    py::array_t<int64_t> ts(cap);
    py::array_t<double> price(cap), qty(cap);
    const size_t n = bank_.snapshot(k, ts.mutable_data(), price.mutable_data(), qty.mutable_data());
    ts.resize({static_cast<py::ssize_t>(n)});
    price.resize({static_cast<py::ssize_t>(n)});
    qty.resize({static_cast<py::ssize_t>(n)});
    return py::make_tuple(ts, price, qty);
  }

  py::dict window_stats(long symbol) const {
    const int32_t k = check_symbol(symbol);
    const SymState& s = bank_.state(k);
    py::dict out;
    for (int m = 0; m < kMetrics; ++m) {
      const RollState& r = s.roll[m];
      const double var = roll_variance(bank_.params(m), r);
      py::dict d;
      d["count"] = r.count;
      d["mean"] = r.count ? roll_mean(r) : kNaN;
      d["std"] = var == var ? std::sqrt(var) : kNaN;
      d["resyncs"] = r.resyncs;
      if (m == kReturn) d["threshold_scale"] = s.rthr_scale;  // see return_activity_exponent
      out[kMetricNames[m]] = d;
    }
    py::dict sym;
    sym["ticks"] = s.ticks;
    sym["trips"] = s.trips;
    sym["suppressed"] = s.suppressed;
    sym["last_ts_ns"] = s.ticks ? py::object(py::int_(s.last_ts)) : py::object(py::none());
    out["symbol"] = sym;
    return out;
  }

  py::dict counters() const {
    const BankCounters& c = bank_.counters();
    py::dict rej;
    uint64_t total = 0;
    for (int r = 1; r < kRejectReasons; ++r) {
      rej[kReasonNames[r]] = c.rejected[r];
      total += c.rejected[r];
    }
    py::dict d;
    d["ticks"] = c.ticks;
    d["rejected"] = total;
    d["rejected_by_reason"] = rej;
    d["trips"] = c.trips;
    d["suppressed"] = c.suppressed;
    d["gated"] = c.gated;
    d["tie_checks"] = c.tie_checks;
    d["drift_trips"] = c.drift_trips;
    d["rate_trips"] = c.rate_trips;
    return d;
  }

  void reset_symbol(long symbol) { bank_.reset_symbol(check_symbol(symbol)); }

  void set_thresholds(long symbol, const std::vector<double>& t) {
    const int32_t k = check_symbol(symbol);
    if (t.size() != kMetrics) throw py::value_error("thresholds needs 3 entries");
    try {
      bank_.set_thresholds(k, DetectorBank::Thresholds{t[0], t[1], t[2]});
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }
  std::vector<double> thresholds(long symbol) const {
    const auto& t = bank_.thresholds(check_symbol(symbol));
    return {t[0], t[1], t[2]};
  }
  size_t bytes_per_symbol() const { return bank_.bytes_per_symbol(); }
  size_t n_symbols() const { return bank_.config().n_symbols; }

  py::tuple config_tuple() const {
    const BankConfig& c = bank_.config();
    std::vector<uint32_t> w, mp;
    std::vector<double> th;
    std::vector<bool> ts, en;
    for (int m = 0; m < kMetrics; ++m) {
      w.push_back(c.metric[m].window);
      mp.push_back(c.metric[m].min_periods);
      th.push_back(c.metric[m].threshold);
      ts.push_back(c.metric[m].two_sided);
      en.push_back(c.metric[m].enabled);
    }
    return py::make_tuple(c.n_symbols, w, mp, th, ts, en, c.ddof, c.volume_bucket_ns,
                          c.cooldown_ns, c.snapshot_len, c.return_bucket_ns,
                          static_cast<int>(c.volume_stat), c.min_bucket_trades,
                          c.return_activity_exponent, c.drift_buckets, c.drift_threshold,
                          c.rate_p, c.rate_window, c.rate_min_trades);
  }

  py::tuple getstate() {
    const BankCounters& c = bank_.counters();
    py::tuple counters = py::make_tuple(c.ticks, c.rejected[0], c.rejected[1], c.rejected[2],
                                        c.rejected[3], c.trips, c.suppressed, c.gated,
                                        c.tie_checks, c.drift_trips, c.rate_trips);
    return py::make_tuple(kBankPickleVersion, static_cast<uint32_t>(sizeof(SymState)), config_tuple(),
                          raw_bytes(bank_.raw_states()), raw_bytes(bank_.raw_ring(0)),
                          raw_bytes(bank_.raw_ring(1)), raw_bytes(bank_.raw_ring(2)),
                          raw_bytes(bank_.raw_snaps()), counters,
                          raw_bytes(bank_.raw_drift_starts()), raw_bytes(bank_.raw_drift_closes()));
  }

  static PyDetectorBank* setstate(const py::tuple& t) {
    if (t.size() != 11 || t[0].cast<int>() != kBankPickleVersion ||
        t[1].cast<uint32_t>() != sizeof(SymState))
      throw py::value_error("unsupported DetectorBank pickle (version or layout differs)");
    py::tuple c = t[2];
    BankConfig cfg = make_bank_config(
        c[0].cast<uint32_t>(), c[1].cast<std::vector<uint32_t>>(),
        c[2].cast<std::vector<uint32_t>>(), c[3].cast<std::vector<double>>(),
        c[4].cast<std::vector<bool>>(), c[5].cast<std::vector<bool>>(), c[6].cast<uint32_t>(),
        c[7].cast<int64_t>(), c[8].cast<int64_t>(), c[9].cast<uint32_t>(),
        c[10].cast<int64_t>(), c[11].cast<int>(), c[12].cast<uint32_t>(), c[13].cast<double>(),
        c[14].cast<uint32_t>(), c[15].cast<double>(), c[16].cast<double>(),
        c[17].cast<uint32_t>(), c[18].cast<uint32_t>());
    std::unique_ptr<PyDetectorBank> b(new PyDetectorBank(cfg));
    restore_bytes(b->bank_.raw_states(), t[3].cast<py::bytes>(), "symbol states");
    for (int m = 0; m < kMetrics; ++m)
      restore_bytes(b->bank_.raw_ring(m), t[4 + m].cast<py::bytes>(), "ring");
    restore_bytes(b->bank_.raw_snaps(), t[7].cast<py::bytes>(), "snapshots");
    restore_bytes(b->bank_.raw_drift_starts(), t[9].cast<py::bytes>(), "drift starts");
    restore_bytes(b->bank_.raw_drift_closes(), t[10].cast<py::bytes>(), "drift closes");
    py::tuple k = t[8];
    BankCounters& bc = b->bank_.raw_counters();
    bc.ticks = k[0].cast<uint64_t>();
    for (int r = 0; r < kRejectReasons; ++r) bc.rejected[r] = k[1 + r].cast<uint64_t>();
    bc.trips = k[5].cast<uint64_t>();
    bc.suppressed = k[6].cast<uint64_t>();
    bc.gated = k[7].cast<uint64_t>();
    bc.tie_checks = k[8].cast<uint64_t>();
    bc.drift_trips = k[9].cast<uint64_t>();
    bc.rate_trips = k[10].cast<uint64_t>();
    return b.release();
  }

 private:
  DetectorBank bank_;
};

py::array_t<double> plain_sliding(const py::handle& xs, uint32_t window) {
  auto x = expect_array<double>(xs, "values");
  if (window < 2) throw py::value_error("window must be >= 2");
  const size_t n = static_cast<size_t>(x.shape(0));
  py::array_t<double> z(n);
  std::vector<double> ring(window);
  {
    py::gil_scoped_release nogil;
    plain_sliding_zscores(x.data(), z.mutable_data(), n, window, ring.data());
  }
  return z;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "Tripwire's C++ rolling-statistics detectors (see tripwire.detect).";
  m.attr("METRIC_NAMES") = py::make_tuple(kMetricNames[0], kMetricNames[1], kMetricNames[2]);
  m.attr("REJECT_REASONS") =
      py::make_tuple(kReasonNames[0], kReasonNames[1], kReasonNames[2], kReasonNames[3]);
  m.attr("TOLERANCE") = kTolerance;

  py::class_<PyRollingStats>(m, "RollingStats", R"doc(
Sliding-window count / mean / variance / z-score, exact and O(1) per update.

z of a value is taken against the window *before* the value enters it. Fewer than
``min_periods`` values (default: ``window``; at least ``ddof + 1``) give NaN; a window with
zero variance gives z = 0. Non-finite values (and values <= 0 when ``positive_only``) are
rejected: z is NaN, the window is untouched and ``rejected`` counts them; with
``strict=True`` they raise ValueError instead.
)doc")
      .def(py::init<uint32_t, py::object, uint32_t, bool, bool>(), py::arg("window"),
           py::arg("min_periods") = py::none(), py::arg("ddof") = 1,
           py::arg("positive_only") = false, py::arg("strict") = false)
      .def("push", &PyRollingStats::push, py::arg("x"),
           "Score x against the window, then add it. Returns z.")
      .def("push_many", &PyRollingStats::push_many, py::arg("values"),
           "push() for each value of a float64 array; returns the z-scores.")
      .def("update",
           [](py::object self, double x) {
             self.cast<PyRollingStats&>().push(x);
             return self;
           },
           py::arg("x"), "river-style: add x, return self.")
      .def("update_many",
           [](py::object self, const py::handle& xs) {
             self.cast<PyRollingStats&>().push_many(xs);
             return self;
           },
           py::arg("values"), "river-style batch form of update().")
      .def("get", &PyRollingStats::last_z, "z of the last value pushed (NaN if none).")
      .def("zscore", &PyRollingStats::zscore, py::arg("x"),
           "z of x against the current window, without adding it.")
      .def("clear", &PyRollingStats::clear, "Empty the window (counters are kept).")
      .def_property_readonly("window", [](const PyRollingStats& r) { return r.params().window; })
      .def_property_readonly("min_periods",
                             [](const PyRollingStats& r) { return r.params().min_periods; })
      .def_property_readonly("ddof", [](const PyRollingStats& r) { return r.params().ddof; })
      .def_property_readonly("positive_only", &PyRollingStats::positive_only)
      .def_property_readonly("strict", &PyRollingStats::strict)
      .def_property_readonly("count", [](const PyRollingStats& r) { return r.state().count; })
      .def_property_readonly("mean", &PyRollingStats::mean)
      .def_property_readonly("variance", &PyRollingStats::variance)
      .def_property_readonly("std",
                             [](const PyRollingStats& r) {
                               const double v = r.variance();
                               return v == v ? std::sqrt(v) : kNaN;
                             })
      .def_property_readonly("rejected",
                             [](const PyRollingStats& r) { return r.state().rejected; })
      .def_property_readonly("resyncs", [](const PyRollingStats& r) { return r.state().resyncs; })
      .def("__repr__",
           [](const PyRollingStats& r) {
             std::ostringstream os;
             os << "RollingStats(window=" << r.params().window
                << ", min_periods=" << r.params().min_periods << ", ddof=" << r.params().ddof
                << ", count=" << r.state().count << ")";
             return os.str();
           })
      .def(py::pickle([](const PyRollingStats& r) { return r.getstate(); },
                      [](const py::tuple& t) { return PyRollingStats::setstate(t); }));

  py::class_<PyDetectorBank>(m, "DetectorBank")
      .def(py::init([](uint32_t n_symbols, std::vector<uint32_t> windows,
                       std::vector<uint32_t> min_periods, std::vector<double> thresholds,
                       std::vector<bool> two_sided, std::vector<bool> enabled, uint32_t ddof,
                       int64_t volume_bucket_ns, int64_t cooldown_ns, uint32_t snapshot_len,
                       int64_t return_bucket_ns, int volume_stat, uint32_t min_bucket_trades,
                       double return_activity_exponent, uint32_t drift_buckets,
                       double drift_threshold, double rate_p, uint32_t rate_window,
                       uint32_t rate_min_trades) {
             try {
               return new PyDetectorBank(make_bank_config(
                   n_symbols, windows, min_periods, thresholds, two_sided, enabled, ddof,
                   volume_bucket_ns, cooldown_ns, snapshot_len, return_bucket_ns, volume_stat,
                   min_bucket_trades, return_activity_exponent, drift_buckets,
                   drift_threshold, rate_p, rate_window, rate_min_trades));
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
           }),
           py::arg("n_symbols"), py::arg("windows"), py::arg("min_periods"),
           py::arg("thresholds"), py::arg("two_sided"), py::arg("enabled"), py::arg("ddof"),
           py::arg("volume_bucket_ns"), py::arg("cooldown_ns"), py::arg("snapshot_len"),
           py::arg("return_bucket_ns") = 0, py::arg("volume_stat") = 0,
           py::arg("min_bucket_trades") = 0, py::arg("return_activity_exponent") = 0.0,
           py::arg("drift_buckets") = 0, py::arg("drift_threshold") = 0.0,
           py::arg("rate_p") = 0.0, py::arg("rate_window") = 0, py::arg("rate_min_trades") = 0)
      .def("push_batch", &PyDetectorBank::push_batch, py::arg("symbol_ids"), py::arg("ts_ns"),
           py::arg("price"), py::arg("qty"), py::arg("strict") = false)
      .def("snapshot", &PyDetectorBank::snapshot, py::arg("symbol_id"))
      .def("window_stats", &PyDetectorBank::window_stats, py::arg("symbol_id"))
      .def("counters", &PyDetectorBank::counters)
      .def("reset_symbol", &PyDetectorBank::reset_symbol, py::arg("symbol_id"))
      .def("set_thresholds", &PyDetectorBank::set_thresholds, py::arg("symbol_id"),
           py::arg("thresholds"))
      .def("thresholds", &PyDetectorBank::thresholds, py::arg("symbol_id"))
      .def("config_tuple", &PyDetectorBank::config_tuple)
      .def_property_readonly("bytes_per_symbol", &PyDetectorBank::bytes_per_symbol)
      .def_property_readonly("n_symbols", &PyDetectorBank::n_symbols)
      .def(py::pickle([](PyDetectorBank& b) { return b.getstate(); },
                      [](const py::tuple& t) { return PyDetectorBank::setstate(t); }));

  m.def("plain_sliding_zscores", &plain_sliding, py::arg("values"), py::arg("window"),
        "Benchmark floor: a plain sliding Welford z-score loop (not exact; do not use).");
}
