// tripwire._feedcheck: the feeds' per-symbol order check (see the comment below).
//
// A module of its own, not part of tripwire._native: linking even this small function into
// the detectors' library moved their hot loop and cost ~10 ns per tick (58 -> 70 ns in
// benchmarks.detector's bank figure, reproducible), whatever translation unit it sat in.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "arrays.hpp"

namespace py = pybind11;
using tripwire_bind::expect_array;

// Per-symbol order check for the feeds' validator, in arrival order. A row is judged only
// against the rows accepted before it (a refused row never moves the state), which is
// inherently sequential; in C++ it costs a few ns per row. ``last_ts``/``max_tid`` are the
// caller's per-symbol state arrays, updated in place. Returns per row: reason (0 accepted,
// 5 duplicate trade id, 6 out of order in time; rows not ``eligible`` stay 0 and are not
// looked at) and, for an accepted row whose trade id jumps, the highest id before it.
py::tuple order_check(const py::handle& sid_h, const py::handle& ts_h, const py::handle& tid_h,
                      const py::handle& ok_h, py::array_t<int64_t> last_ts,
                      py::array_t<int64_t> max_tid) {
  auto sid = expect_array<int32_t>(sid_h, "symbol_id");
  auto ts = expect_array<int64_t>(ts_h, "ts_ns");
  auto tid = expect_array<int64_t>(tid_h, "trade_id");
  auto ok = py::array_t<bool, py::array::c_style>::ensure(ok_h);
  const py::ssize_t n = sid.shape(0);
  if (!ok || ts.shape(0) != n || tid.shape(0) != n || ok.shape(0) != n)
    throw py::value_error("order_check: columns differ in length");
  if (last_ts.ndim() != 1 || max_tid.ndim() != 1 || last_ts.shape(0) != max_tid.shape(0))
    throw py::value_error("order_check: state arrays must be 1-D and of equal length");
  if (!(last_ts.flags() & py::array::c_style) || !(max_tid.flags() & py::array::c_style) ||
      !last_ts.writeable() || !max_tid.writeable())
    throw py::value_error("order_check: state arrays must be writeable and contiguous");
  const int64_t n_sym = last_ts.shape(0);
  py::array_t<int8_t> reason(n);
  py::array_t<int64_t> gap_prev(n);
  const int32_t* s = sid.data();
  const int64_t* t = ts.data();
  const int64_t* id = tid.data();
  const bool* e = ok.data();
  int64_t* lts = last_ts.mutable_data();
  int64_t* mid = max_tid.mutable_data();
  int8_t* r = reason.mutable_data();
  int64_t* g = gap_prev.mutable_data();
  for (py::ssize_t i = 0; i < n; ++i) {
    if (e[i] && (s[i] < 0 || s[i] >= n_sym))
      throw py::value_error("order_check: symbol id out of range at row " + std::to_string(i));
  }
  {
    py::gil_scoped_release nogil;
    for (py::ssize_t i = 0; i < n; ++i) {
      r[i] = 0;
      g[i] = -1;
      if (!e[i]) continue;
      const int32_t k = s[i];
      if (id[i] >= 0 && mid[k] >= 0 && id[i] <= mid[k]) {
        r[i] = 5;
      } else if (t[i] < lts[k]) {
        r[i] = 6;
      } else {
        if (id[i] >= 0) {
          if (mid[k] >= 0 && id[i] > mid[k] + 1) g[i] = mid[k];
          mid[k] = id[i];
        }
        lts[k] = t[i];
      }
    }
  }
  return py::make_tuple(reason, gap_prev);
}


PYBIND11_MODULE(_feedcheck, m) {
  m.doc() = "Tripwire's feed validation kernel (see tripwire.feeds.validate).";
  m.def("order_check", &order_check, py::arg("symbol_id"), py::arg("ts_ns"),
        py::arg("trade_id"), py::arg("eligible"), py::arg("last_ts").noconvert(),
        py::arg("max_tid").noconvert(),
        "Feed validation: duplicate / out-of-order verdicts per symbol, state updated in place.");
}
